#!/usr/bin/env bash
# Builds the image and installs or upgrades the Helm release.
#
#   scripts/deploy.sh [--dry-run] local   Kind: image loaded into the cluster,
#                                         Kafka and MinIO in the cluster
#   scripts/deploy.sh [--dry-run] aws     EKS: image pushed to ECR (ECR_REPOSITORY,
#                                         AWS_REGION), MSK and S3 from values-aws.yaml
#
# The plugin goes into the ConfigMap lineage-plugin from PLUGIN (default
# plugins/enrich.wasm); a new plugin is a new deploy, no image build needed
# (SKIP_IMAGE=1 skips it) and no restart: the pods switch to it at their
# next checkpoint. --dry-run prints the commands instead.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=false
target=""
for arg in "$@"; do
	case "$arg" in
	-h | --help)
		sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	--dry-run) dry_run=true ;;
	local | aws) target="$arg" ;;
	*)
		echo "deploy: unknown argument $arg (try --help)" >&2
		exit 2
		;;
	esac
done
[ -n "$target" ] || {
	echo "deploy: say local or aws (try --help)" >&2
	exit 2
}

name=deploy
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

release="${RELEASE:-lineage}"
namespace="${NAMESPACE:-lineage}"
plugin="${PLUGIN:-plugins/enrich.wasm}"
values="helm/lineage/values-$target.yaml"
tag="${IMAGE_TAG:-$(git rev-parse --short HEAD 2>/dev/null || echo dev)}"

case "$target" in
local)
	need docker kind kubectl helm "install them first (see the README, Kubernetes with Kind)"
	image="lineage"
	cluster="${KIND_CLUSTER:-lineage}"
	;;
aws)
	need docker aws kubectl helm "install them first (see the README, AWS with EKS, MSK and S3)"
	: "${ECR_REPOSITORY:?set ECR_REPOSITORY, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/lineage}"
	: "${AWS_REGION:?set AWS_REGION}"
	image="$ECR_REPOSITORY"
	;;
esac

if [ ! -f "$plugin" ]; then
	if $dry_run; then
		say "would build $plugin first (scripts/build-plugins.sh)"
	else
		scripts/build-plugins.sh
	fi
fi

if [ "${SKIP_IMAGE:-}" != 1 ]; then
	run docker build -t "$image:$tag" .
	case "$target" in
	local) run kind load docker-image "$image:$tag" --name "$cluster" ;;
	aws)
		if $dry_run; then
			echo "+ aws ecr get-login-password --region $AWS_REGION | docker login --username AWS --password-stdin ${ECR_REPOSITORY%%/*}"
		else
			aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "${ECR_REPOSITORY%%/*}"
		fi
		run docker push "$image:$tag"
		;;
	esac
fi

if $dry_run; then
	echo "+ kubectl create namespace $namespace --dry-run=client -o yaml | kubectl apply -f -"
	echo "+ kubectl create configmap lineage-plugin --namespace $namespace --from-file=plugin.wasm=$plugin --dry-run=client -o yaml | kubectl apply -f -"
else
	kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
	kubectl create configmap lineage-plugin --namespace "$namespace" \
		--from-file=plugin.wasm="$plugin" --dry-run=client -o yaml | kubectl apply -f -
fi
# The pods are not rolled for a new plugin: each one sees the ConfigMap
# change under /plugin and switches at its next checkpoint.
run helm upgrade --install "$release" helm/lineage --namespace "$namespace" \
	-f "$values" --set image.repository="$image" --set image.tag="$tag" \
	--wait --timeout 10m
if $dry_run; then
	say "dry run: nothing was changed"
	exit 0
fi
say "deployed $release to $namespace; watch: kubectl -n $namespace get pods; metrics: kubectl -n $namespace port-forward svc/$release 9464"
