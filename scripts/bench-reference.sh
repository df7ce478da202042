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

scripts/install.sh >&2
scripts/build-plugins.sh >&2
cargo build --release --locked --quiet -p lineage
TOOLS="${LINEAGE_TOOLS_DIR:-$HOME/.cache/lineage/tools}"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$TOOLS/tansu-0.6.0/bin/tansu" broker --listener-url "tcp://127.0.0.1:$port" \
	--advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ >/dev/null 2>&1 &
tansu=$!
out=$(mktemp -d)
trap 'kill $tansu 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 600); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$port" KAFKA_TOPIC=bench-reference BENCH_RECORDS="$records"
echo "cores: $(nproc)"
target/release/lineage bench kafka 2>/dev/null
"$TOOLS/python/bin/python" scripts/reference_pipeline.py "$KAFKA_BOOTSTRAP_SERVERS" "$KAFKA_TOPIC" "$records" "$out"
