#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo; echo "== $*" >&2; }

step "install prerequisites"
scripts/install.sh

step "build plugins (wasm32-wasip2 components)"
scripts/build-plugins.sh --test

step "format"
cargo fmt --all --check

step "lint (host and plugins)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --target wasm32-wasip2 -p guest-enrich -p hostile-plugin --locked -- -D warnings
# Apart: it uses guest-enrich without enrich's exports (features would unify).
cargo clippy --target wasm32-wasip2 -p pseudonymize --locked -- -D warnings

step "tests"
cargo test --workspace --locked

echo; echo "test: all passed" >&2
