#!/usr/bin/env bash
# Installs what building and testing Lineage needs. Idempotent: a second
# run only checks. Run as root or with sudo available.
#
#   scripts/install.sh              everything
#   scripts/install.sh --build-only what building and running needs, not
#                                   the test tools (tansu, pyarrow, duckdb,
#                                   chromium)
#   scripts/install.sh --check      report what is missing, install nothing
set -euo pipefail
cd "$(dirname "$0")/.."

check_only=false
build_only=false
case "${1:-}" in
"") ;;
--check) check_only=true ;;
--build-only) build_only=true ;;
*) echo "usage: $0 [--check | --build-only]" >&2; exit 2 ;;
esac

say() { echo "install: $*" >&2; }
die() { say "$*"; exit 1; }

# Debian packages the build needs: a C toolchain and cmake for the -sys
# crates (librdkafka, mimalloc), and the libraries librdkafka links (TLS,
# SASL, zlib; curl for its OIDC support); python3-venv for the test readers
# and, for the tests, shellcheck (the scripts) and strace (the order of
# fsyncs on local disk).
APT_PACKAGES=(build-essential pkg-config cmake libssl-dev libsasl2-dev zlib1g-dev libcurl4-openssl-dev python3-venv shellcheck strace)

# Installs the Debian packages given that are missing (with --check,
# names them and fails).
apt_install() {
    local missing=() pkg sudo=""
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    $check_only && die "missing Debian packages: ${missing[*]}"
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them; install them by hand"
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    say "installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
apt_install "${APT_PACKAGES[@]}"

# The toolchain pinned in rust-toolchain.toml, with the plugin target.
command -v rustup >/dev/null || die "rustup is missing; install it from https://rustup.rs"
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
# Targets and components are added to the real toolchain; on offline
# machines that is the installed "stable" of the same release, linked under
# the pinned name.
toolchain="$channel"
if ! rustup toolchain list | grep -q "^$channel"; then
    stable_version=$(rustup run stable rustc --version 2>/dev/null | awk '{print $2}' || true)
    if [[ "$stable_version" == "$channel" ]]; then
        $check_only && die "toolchain $channel is not linked"
        say "linking toolchain $channel to the installed stable $stable_version"
        rustup toolchain link "$channel" "$(rustup run stable rustc --print sysroot)"
        toolchain=stable
    else
        $check_only && die "toolchain $channel is missing"
        say "installing toolchain $channel"
        rustup toolchain install "$channel" --profile minimal --component rustfmt,clippy
    fi
elif [[ -L "$(rustup run "$channel" rustc --print sysroot)" ]] ||
    [[ "$(readlink -f "$(rustup run "$channel" rustc --print sysroot)")" == "$(readlink -f "$(rustup run stable rustc --print sysroot 2>/dev/null)")" ]]; then
    toolchain=stable
fi
if ! rustup target list --installed --toolchain "$toolchain" | grep -qx wasm32-wasip2; then
    $check_only && die "the wasm32-wasip2 target is missing"
    say "adding the wasm32-wasip2 target"
    rustup target add --toolchain "$toolchain" wasm32-wasip2
fi
for component in rustfmt clippy; do
    rustup component list --installed --toolchain "$toolchain" 2>/dev/null | grep -q "^$component" || {
        $check_only && die "rustup component $component is missing"
        rustup component add --toolchain "$toolchain" "$component"
    }
done

if $build_only; then
    say "ready: $(rustc --version), wasm32-wasip2"
    exit 0
fi

# Headless Chromium, for the test that renders the status page (Debian's
# package; a test-only tool, so not with --build-only).
apt_install chromium fonts-dejavu-core

# Tools that take minutes to build or download are installed once into a
# stable cache, keyed by version, and reused.
TOOLS="${LINEAGE_TOOLS_DIR:-$HOME/.cache/lineage/tools}"
TANSU_VERSION=0.6.0
tansu="$TOOLS/tansu-$TANSU_VERSION/bin/tansu"
if [[ ! -x "$tansu" ]]; then
    $check_only && die "tansu $TANSU_VERSION is missing (expected $tansu)"
    say "building tansu $TANSU_VERSION (a Kafka-compatible broker for the tests; minutes, once)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore \
        --root "$TOOLS/tansu-$TANSU_VERSION" --quiet
fi

# garage is a self-hosted S3 store: the tests run against it as a second,
# real S3 implementation (one that ignores conditional writes).
GARAGE_VERSION=2.5.0
garage="$TOOLS/garage-$GARAGE_VERSION/bin/garage"
if [[ ! -x "$garage" ]]; then
    $check_only && die "garage $GARAGE_VERSION is missing (expected $garage)"
    say "building garage $GARAGE_VERSION (a self-hosted S3 store for the tests; minutes, once)"
    cargo install garage --version "$GARAGE_VERSION" --locked \
        --root "$TOOLS/garage-$GARAGE_VERSION" --quiet
fi

# pyarrow and DuckDB read the output in the tests, as users do; moto serves
# S3 on loopback and enforces conditional writes as AWS does; Helm's Go SDK
# and the Kubernetes API schemas check the chart.
venv="$TOOLS/python"
if ! "$venv/bin/python" -c "import pyarrow, duckdb, moto.server, helm_python, kubernetes_validate, yaml" 2>/dev/null; then
    $check_only && die "the Python test tools (pyarrow, duckdb, moto, helm-python-sdk, kubernetes-validate) are missing (expected $venv)"
    say "installing pyarrow, duckdb, moto[server], helm-python-sdk and kubernetes-validate into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check pyarrow duckdb "moto[server]" \
        helm-python-sdk kubernetes-validate pyyaml
fi
# The Iceberg tests' readers (host/tests/it/read_table.py): pyiceberg's
# SqlCatalog on Lineage's sqlite catalog, and DuckDB's iceberg extension
# (with the avro extension it reads manifests with) from PyPI, so that
# nothing is downloaded at test time; the extensions are built for one
# DuckDB version, which is pinned with them.
duckdb_version=1.5.5
if ! "$venv/bin/python" -c "import pyiceberg.catalog.sql, duckdb_extension_iceberg, duckdb_extension_avro, duckdb, sys; sys.exit(duckdb.__version__ != '$duckdb_version')" 2>/dev/null; then
    $check_only && die "pyiceberg and DuckDB $duckdb_version with its iceberg extension are missing from $venv"
    say "installing pyiceberg and DuckDB $duckdb_version with its iceberg and avro extensions into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "pyiceberg[sql-sqlite,pyarrow]==0.12.0" \
        "duckdb==$duckdb_version" duckdb-extensions "duckdb-extension-iceberg==$duckdb_version" \
        "duckdb-extension-avro==$duckdb_version"
fi
# Confluent's own client frames the Schema Registry tests' records
# (host/tests/it/produce_framed.py), so that Lineage's reading of the wire
# format is checked against the real thing.
if ! "$venv/bin/python" -c "import confluent_kafka.schema_registry.avro, fastavro" 2>/dev/null; then
    $check_only && die "confluent-kafka (with its Avro serializer) is missing from $venv"
    say "installing confluent-kafka[avro,schemaregistry] into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "confluent-kafka[avro,schemaregistry]==2.16.1"
fi
# AWS's own MSK IAM signer: Lineage's tokens are compared with its tokens
# (host/tests/it/msk_token.py).
if ! "$venv/bin/python" -c "import aws_msk_iam_sasl_signer" 2>/dev/null; then
    $check_only && die "aws-msk-iam-sasl-signer-python is missing from $venv"
    say "installing aws-msk-iam-sasl-signer-python into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "aws-msk-iam-sasl-signer-python==1.0.2"
fi
# componentize-py builds the Python plugin (scripts/build-plugins.sh).
if [[ ! -x "$venv/bin/componentize-py" ]]; then
    $check_only && die "componentize-py is missing from $venv"
    say "installing componentize-py into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check componentize-py==0.25.1
fi
# The Compose specification's JSON schema, as docker-compose 1.29.2 ships it
# (its dependencies are not needed: only the schema file is read).
if ! "$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('compose') is None)" 2>/dev/null; then
    $check_only && die "the Compose specification schema (docker-compose 1.29.2) is missing from $venv"
    say "installing the Compose specification schema (docker-compose 1.29.2, without dependencies) into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps docker-compose==1.29.2
fi

say "ready: $(rustc --version), wasm32-wasip2, tansu $TANSU_VERSION, garage $GARAGE_VERSION, pyarrow + duckdb (with its iceberg extension) + pyiceberg + moto + helm SDK + confluent-kafka + the MSK IAM signer"
