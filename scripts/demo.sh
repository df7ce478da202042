#!/usr/bin/env bash
# Sets everything up and runs what Lineage does today: loads the default
# plugin and runs it over the shipped sample records.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install.sh
scripts/build-plugins.sh
cargo build --release --locked --quiet -p lineage
lineage=target/release/lineage

echo
echo "== lineage plugin inspect plugins/enrich.wasm"
"$lineage" plugin inspect plugins/enrich.wasm
echo
echo "== lineage plugin test plugins/enrich.wasm --input plugins/samples/enrich.jsonl"
"$lineage" plugin test plugins/enrich.wasm --input plugins/samples/enrich.jsonl
echo
echo "Next: edit plugins/samples/enrich.jsonl and run the last command again, or"
echo "measure the plugin: $lineage bench plugin"
