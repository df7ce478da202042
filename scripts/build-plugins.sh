#!/usr/bin/env bash
# Builds the plugins as wasm32-wasip2 components into plugins/*.wasm.
#   scripts/build-plugins.sh            the shipped plugins
#   scripts/build-plugins.sh --test     also the test fixtures, into target/test-plugins/
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "build-plugins: the wasm32-wasip2 target is missing; run scripts/install.sh" >&2
    exit 1
fi

# A separate target directory: this script also runs from inside `cargo
# test`, which holds the lock on the main one.
export CARGO_TARGET_DIR="${LINEAGE_PLUGIN_TARGET_DIR:-$PWD/target/plugins}"
out="$CARGO_TARGET_DIR/wasm32-wasip2/plugin"

packages=(-p guest-enrich)
if [[ "${1:-}" == "--test" ]]; then
    packages+=(-p hostile-plugin)
fi
cargo build --quiet --target wasm32-wasip2 --profile plugin "${packages[@]}"

# Copy by rename so that a reader never sees half a component.
install_component() {
    local from="$1" to="$2"
    mkdir -p "$(dirname "$to")"
    cp "$from" "$to.tmp.$$"
    mv -f "$to.tmp.$$" "$to"
}
install_component "$out/guest_enrich.wasm" plugins/enrich.wasm
echo "build-plugins: plugins/enrich.wasm ($(wc -c <plugins/enrich.wasm) bytes)"
if [[ "${1:-}" == "--test" ]]; then
    install_component "$out/hostile_plugin.wasm" target/test-plugins/hostile.wasm
    echo "build-plugins: target/test-plugins/hostile.wasm"
fi
