# shellcheck shell=bash
# Helpers for the deploy scripts; sourced, not run. The script sets `name`
# (its prefix in messages) and `dry_run` (true: print commands, run none).
: "${name:?}" "${dry_run:?}"

say() { echo "$name: $*" >&2; }

# Runs a command, or prints it on a dry run.
run() {
	if $dry_run; then
		echo "+ $*"
	else
		"$@"
	fi
}

# Exits naming every missing tool (a dry run only says which it would need).
# The last argument says where to get them.
need() {
	local hint="${*: -1}" missing=()
	for tool in "${@:1:$#-1}"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
	if ((${#missing[@]})); then
		if $dry_run; then
			say "would need: ${missing[*]}"
		else
			say "missing: ${missing[*]}; $hint"
			exit 1
		fi
	fi
}
