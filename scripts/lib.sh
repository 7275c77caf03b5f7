# shellcheck shell=bash
# Shared helpers for the scripts in this directory. Source it, don't run it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Environment:
#   LB_STATE  state directory (default /var/tmp/label-backup): dockerd log,
#             integration-test data directories, locks.
#   LB_TOOLS  cache of Go-built tools, one directory per <name>@<version>
#             (default $HOME/.cache/label-backup/tools).

if [[ -n "${_LB_LIB_SOURCED:-}" ]]; then
	return 0
fi
_LB_LIB_SOURCED=1

# repo_root is the checkout this lib.sh belongs to.
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# log writes a prefixed message to stderr (stdout stays free for output that
# callers consume, such as install-deps.sh --print-path).
log() {
	printf '[%s] %s\n' "$(basename "${0:-lb}" .sh)" "$*" >&2
}

die() {
	log "error: $*"
	exit 1
}

# state_dir prints the state directory after creating it with mode 0755.
# Databases run as the postgres/mysql/redis users, so every parent of the
# directory must be traversable by others; warn when one is not.
state_dir() {
	local d=${LB_STATE:-/var/tmp/label-backup}
	if [[ ! -d $d ]]; then
		mkdir -p "$d" || die "cannot create state dir $d"
	fi
	chmod 0755 "$d" 2>/dev/null || true
	local p=$d
	while [[ $p != / && $p != . ]]; do
		p=$(dirname "$p")
		if [[ -d $p ]] && (($(stat -c '%a' "$p") % 2 == 0)); then
			# Octal mode ending in an even digit: no execute bit for others.
			log "warning: $p is not traversable by other users (mode $(stat -c '%a' "$p")); database users may not reach $d"
		fi
	done
	printf '%s\n' "$d"
}

# tools_dir prints the tool cache directory after creating it.
tools_dir() {
	local home=${HOME:-$(cd ~ && pwd)}
	local d=${LB_TOOLS:-$home/.cache/label-backup/tools}
	mkdir -p "$d" || die "cannot create tools dir $d"
	printf '%s\n' "$d"
}

# ensure_go makes sure a go command is on PATH (the standard tarball
# location is added when it is installed but not on PATH).
ensure_go() {
	if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
		PATH=/usr/local/go/bin:$PATH
		export PATH
	fi
	command -v go >/dev/null 2>&1 || die "go is not installed (need Go >= 1.26 on PATH)"
}

# is_root reports whether we run as uid 0.
is_root() {
	[[ $(id -u) -eq 0 ]]
}
