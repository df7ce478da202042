#!/usr/bin/env bash
# One command on a laptop: builds Lineage and runs the whole pipeline (a
# Kafka broker, an S3 server with a bucket, the record generator and
# `lineage run`) until Ctrl-C, which stops it gracefully.
#
#   scripts/build-and-run.sh [--dry-run] [--processes]
#
# With a working Docker it runs docker-compose.yml (Kafka, MinIO). Without
# one, or with --processes, it runs local processes: tansu, moto_server,
# `lineage generate` and `lineage run`, all on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=false
processes=false
for arg in "$@"; do
	case "$arg" in
	-h | --help)
		sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	--dry-run) dry_run=true ;;
	--processes) processes=true ;;
	*)
		echo "build-and-run: unknown option $arg (try --help)" >&2
		exit 2
		;;
	esac
done

name=build-and-run
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if ! $processes && command -v docker >/dev/null && docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	say "Docker is here: docker compose up --build (Ctrl-C stops it)"
	run docker compose up --build
	exit 0
fi
say "no working Docker (or --processes): running tansu, moto, the generator and lineage as local processes"

TOOLS="${LINEAGE_TOOLS_DIR:-$HOME/.cache/lineage/tools}"
run scripts/install.sh
run scripts/build-plugins.sh
run cargo build --release --locked -p lineage
lineage=target/release/lineage

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
kafka=$(port)
s3=$(port)
metrics=$(port)
export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$kafka" KAFKA_TOPIC=events
export AWS_ENDPOINT_URL="http://127.0.0.1:$s3" AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=lineage AWS_SECRET_ACCESS_KEY=lineage-secret

logs=$(mktemp -d)
pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
# In sessions of their own, so that Ctrl-C reaches only `lineage run`
# (which then commits what it consumed) and the broker and the store stay
# up until it is done.
background() {
	local name="$1"
	shift
	if $dry_run; then
		echo "+ $* > $logs/$name.log &"
	else
		setsid "$@" >"$logs/$name.log" 2>&1 &
		pids+=($!)
	fi
}
wait_port() {
	$dry_run && return 0
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	say "nothing listens on $1"
	exit 1
}

trap cleanup EXIT
background tansu "$TOOLS/tansu-0.6.0/bin/tansu" broker --listener-url "tcp://127.0.0.1:$kafka" \
	--advertised-listener-url "tcp://127.0.0.1:$kafka" --storage-engine memory://tansu/
background moto "$TOOLS/python/bin/moto_server" -H 127.0.0.1 -p "$s3"
wait_port "$kafka"
wait_port "$s3"
run "$TOOLS/tansu-0.6.0/bin/tansu" topic create events --broker "tcp://127.0.0.1:$kafka" --partitions 6
run "$TOOLS/python/bin/python" -c "import urllib.request as u; u.urlopen(u.Request('$AWS_ENDPOINT_URL/lineage', method='PUT'))"
background generate "$lineage" generate --rate 100 --invalid-share 0.1

say "S3 (moto) at $AWS_ENDPOINT_URL, bucket lineage; list the output with:"
say "  curl -s '$AWS_ENDPOINT_URL/lineage?list-type=2&prefix=output/'"
say "metrics: http://127.0.0.1:$metrics/metrics; logs of the other parts: $logs"
say "Ctrl-C stops it: lineage commits what it consumed, then the rest stops"
if $dry_run; then
	echo "+ $lineage run (OUTPUT_PATH=s3://lineage/output ...)"
	exit 0
fi
# In the foreground: Ctrl-C reaches it, and the script goes on once it has
# committed and exited.
status=0
OUTPUT_PATH=s3://lineage/output DROPPED_PATH=s3://lineage/dropped \
	WRITE_AHEAD_COMMIT_LOG_PATH=s3://lineage/write-ahead-commit-log \
	PLUGIN_PATH=plugins/enrich.wasm CHECKPOINT_INTERVAL=10s PROGRESS_INTERVAL=10s \
	METRICS_ADDRESS="127.0.0.1:$metrics" "$lineage" run || status=$?
say "lineage run exited ($status); stopping the generator, moto and tansu"
exit "$status"
