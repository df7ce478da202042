#!/usr/bin/env bash
# End-to-end throughput of `lineage run` to local disk, to moto and to
# garage, from the same benchmark (`lineage bench kafka`), with tansu, moto
# and garage started on loopback ports here and stopped at the end.
#
#   scripts/bench-stores.sh [RECORDS]     default 1000000
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
-h | --help)
	sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac
records="${1:-1000000}"

scripts/install.sh >&2
scripts/build-plugins.sh >&2
cargo build --release --locked --quiet -p lineage
lineage=target/release/lineage
TOOLS="${LINEAGE_TOOLS_DIR:-$HOME/.cache/lineage/tools}"
garage="$TOOLS/garage-2.5.0/bin/garage"

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 600); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench-stores: nothing listens on $1" >&2
	exit 1
}

kafka=$(port)
"$TOOLS/tansu-0.6.0/bin/tansu" broker --listener-url "tcp://127.0.0.1:$kafka" \
	--advertised-listener-url "tcp://127.0.0.1:$kafka" --storage-engine memory://tansu/ >/dev/null 2>&1 &
pids+=($!)
moto=$(port)
"$TOOLS/python/bin/moto_server" -H 127.0.0.1 -p "$moto" >/dev/null 2>&1 &
pids+=($!)

# A single-node garage with a bucket and a key (the tests do the same).
s3=$(port)
rpc=$(port)
cat >"$work/garage.toml" <<EOF
metadata_dir = "$work/meta"
data_dir = "$work/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(printf 'ab%.0s' $(seq 32))"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
EOF
"$garage" -c "$work/garage.toml" server >"$work/garage.log" 2>&1 &
pids+=($!)
g() { "$garage" -c "$work/garage.toml" "$@" >/dev/null; }
wait_port "$kafka"
wait_port "$moto"
wait_port "$s3"
for _ in $(seq 100); do node=$("$garage" -c "$work/garage.toml" node id -q 2>/dev/null) && break; sleep 0.2; done
g layout assign -z dc1 -c 1G "${node%%@*}"
g layout apply --version 1
g bucket create lineage
key_id=GK0123456789abcdef01234567
secret=5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa
g key import --yes -n bench "$key_id" "$secret"
g bucket allow --read --write --owner lineage --key bench
python3 -c "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:$moto/lineage', method='PUT'))"

export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$kafka" BENCH_RECORDS="$records"
export AWS_ACCESS_KEY_ID="$key_id" AWS_SECRET_ACCESS_KEY="$secret"
echo "== local disk"
KAFKA_TOPIC=bench-local "$lineage" bench kafka
echo "== moto (s3://, http://127.0.0.1:$moto)"
KAFKA_TOPIC=bench-moto AWS_REGION=us-east-1 "$lineage" bench kafka \
	--store s3://lineage/bench --s3-endpoint "http://127.0.0.1:$moto"
echo "== garage (s3://, http://127.0.0.1:$s3, --single-writer)"
KAFKA_TOPIC=bench-garage AWS_REGION=garage "$lineage" bench kafka \
	--store s3://lineage/bench --s3-endpoint "http://127.0.0.1:$s3" --single-writer
