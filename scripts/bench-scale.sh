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

scripts/install.sh >&2
scripts/build-plugins.sh >&2
cargo build --release --locked --quiet -p lineage
TOOLS="${LINEAGE_TOOLS_DIR:-$HOME/.cache/lineage/tools}"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$TOOLS/tansu-0.6.0/bin/tansu" broker --listener-url "tcp://127.0.0.1:$port" \
	--advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ >/dev/null 2>&1 &
tansu=$!
trap 'kill $tansu 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 600); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$port" KAFKA_TOPIC=bench-scale BENCH_RECORDS="$records"
echo "cores: $(nproc)"
for n in "${counts[@]}"; do
	echo "== $n instance(s)"
	target/release/lineage bench kafka --instances "$n"
done
