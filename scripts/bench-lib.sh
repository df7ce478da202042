# shellcheck shell=bash
# For the benchmark scripts; sourced, not run.

# Installs what a benchmark needs and builds the release binary and plugins.
bench_build() {
	scripts/install.sh >&2
	scripts/build-plugins.sh >&2
	cargo build --release --locked --quiet -p lineage
	TOOLS="${LINEAGE_TOOLS_DIR:-$HOME/.cache/lineage/tools}"
}

# What a script has to clean up on exit besides tansu; it redefines this.
bench_cleanup() { :; }

# Starts tansu on a free loopback port, stopped on exit (then
# `bench_cleanup` runs), and exports KAFKA_BOOTSTRAP_SERVERS.
start_tansu() {
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	"$TOOLS/tansu-0.6.0/bin/tansu" broker --listener-url "tcp://127.0.0.1:$port" \
		--advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ >/dev/null 2>&1 &
	tansu=$!
	trap 'kill $tansu 2>/dev/null || true; wait 2>/dev/null || true; bench_cleanup' EXIT
	for _ in $(seq 600); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$port"
}
