#!/usr/bin/env bash
# End-to-end throughput of 1, 2 and 3 `lineage run` pipelines in one
# consumer group on this machine (`lineage bench kafka --instances N`), over
# the same topic, against a tansu broker started on a loopback port here.
#
#   scripts/bench-scale.sh [RECORDS] [INSTANCES...]   default 1000000 1 2 3
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
-h | --help)
	sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac
records="${1:-1000000}"
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 2 3)

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bench_build
start_tansu

export KAFKA_TOPIC=bench-scale BENCH_RECORDS="$records"
echo "cores: $(nproc)"
for n in "${counts[@]}"; do
	echo "== $n instance(s)"
	target/release/lineage bench kafka --instances "$n"
done
