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

# Copy by rename so that a reader never sees half a component.
install_component() {
    local from="$1" to="$2"
    mkdir -p "$(dirname "$to")"
    cp "$from" "$to.tmp.$$"
    mv -f "$to.tmp.$$" "$to"
}
cargo build --quiet --target wasm32-wasip2 --profile plugin "${packages[@]}"
install_component "$out/guest_enrich.wasm" plugins/enrich.wasm
# On its own, and after enrich.wasm is copied: built together, cargo would
# unify guest-enrich's features and give pseudonymize enrich's exports; and
# this build rewrites guest_enrich.wasm as a library without exports.
cargo build --quiet --target wasm32-wasip2 --profile plugin -p pseudonymize
install_component "$out/pseudonymize.wasm" plugins/pseudonymize.wasm
for name in enrich pseudonymize; do
    echo "build-plugins: plugins/$name.wasm ($(wc -c <"plugins/$name.wasm") bytes)"
done

# The Python plugin, with componentize-py from the tools venv
# (scripts/install.sh) or PATH; rebuilt only when its sources or the WIT
# changed. Required for the tests, optional otherwise.
tools="${LINEAGE_TOOLS_DIR:-$HOME/.cache/lineage/tools}"
componentize_py="$tools/python/bin/componentize-py"
[[ -x "$componentize_py" ]] || componentize_py="$(command -v componentize-py || true)"
if [[ -z "$componentize_py" ]]; then
    if [[ "${1:-}" == "--test" ]]; then
        echo "build-plugins: componentize-py is missing; run scripts/install.sh" >&2
        exit 1
    fi
    echo "build-plugins: componentize-py not found; skipping plugins/enrich-py.wasm (scripts/install.sh installs it)"
else
    py=plugins/enrich-py.wasm
    if [[ ! -f "$py" ]] || [[ -n "$(find plugins/enrich-py wit -newer "$py" -type f -print -quit)" ]]; then
        "$componentize_py" -d wit -w plugin componentize -p plugins/enrich-py app -o "$py.tmp.$$" >/dev/null
        mv -f "$py.tmp.$$" "$py"
    fi
    echo "build-plugins: $py ($(wc -c <"$py") bytes)"
fi
if [[ "${1:-}" == "--test" ]]; then
    install_component "$out/hostile_plugin.wasm" target/test-plugins/hostile.wasm
    # On its own, as pseudonymize: it links guest-enrich without its exports.
    cargo build --quiet --target wasm32-wasip2 --profile plugin -p enrich-plus
    install_component "$out/enrich_plus.wasm" target/test-plugins/enrich-plus.wasm
    echo "build-plugins: target/test-plugins/hostile.wasm, target/test-plugins/enrich-plus.wasm"
fi
