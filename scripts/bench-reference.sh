#!/usr/bin/env bash
# The README's performance table, side by side in one run against a tansu
# broker started here: the plain consumer and `lineage run` end to end
# (`lineage bench kafka`, which fills the topic), then the Python reference
# pipeline (scripts/reference_pipeline.py) over the same records.
#
#   scripts/bench-reference.sh [RECORDS]   default 2000000
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
-h | --help)
	sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac
records="${1:-2000000}"

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bench_build
out=$(mktemp -d)
bench_cleanup() { rm -rf "$out"; }
start_tansu

export KAFKA_TOPIC=bench-reference BENCH_RECORDS="$records"
echo "cores: $(nproc)"
target/release/lineage bench kafka 2>/dev/null
"$TOOLS/python/bin/python" scripts/reference_pipeline.py "$KAFKA_BOOTSTRAP_SERVERS" "$KAFKA_TOPIC" "$records" "$out"
