#!/usr/bin/env bash
# Sets everything up and runs `lineage demo`: an in-process Kafka mock
# cluster, a generator producing the seed's events (some invalid), and the
# real pipeline writing Parquet and the commit log under ./lineage-data.
# Arguments go to `lineage demo` (try --help); Ctrl-C stops it early.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
-h | --help)
	sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
	echo
	;;
esac

scripts/install.sh --build-only
scripts/build-plugins.sh
cargo build --release --locked --quiet -p lineage
exec target/release/lineage demo "$@"
