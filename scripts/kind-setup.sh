#!/usr/bin/env bash
# Creates a local Kubernetes cluster with Kind for Lineage (once; a cluster
# that exists is kept), then points kubectl at it.
#
#   scripts/kind-setup.sh [--dry-run] [CLUSTER]     default cluster: lineage
#
# Needs docker, kind and kubectl. Then: scripts/deploy.sh local
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=false
cluster=lineage
for arg in "$@"; do
	case "$arg" in
	-h | --help)
		sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	--dry-run) dry_run=true ;;
	-*)
		echo "kind-setup: unknown option $arg (try --help)" >&2
		exit 2
		;;
	*) cluster="$arg" ;;
	esac
done

name=kind-setup
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

need docker kind kubectl "install them first (https://kind.sigs.k8s.io/docs/user/quick-start/, https://kubernetes.io/docs/tasks/tools/)"
if ! $dry_run && kind get clusters 2>/dev/null | grep -qx "$cluster"; then
	say "cluster $cluster exists; keeping it"
else
	run kind create cluster --name "$cluster" --wait 120s
fi
run kubectl config use-context "kind-$cluster"
run kubectl cluster-info --context "kind-$cluster"
say "ready: kubectl talks to kind-$cluster; next: scripts/deploy.sh local"
