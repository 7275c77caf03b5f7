#!/usr/bin/env bash
# Installs what builds and tests need, idempotently:
#   - Debian packages: Docker engine and the database servers/clients whose
#     binaries the integration tests run (inside containers, via /usr:/usr:ro);
#   - Go-built tools (buf, protoc plugins), cached by version in
#     $LB_TOOLS/<name>@<version>/ so a second run costs nothing;
#   - optionally versitygw (--with-s3) and FerretDB (--with-mongo).
#
# Usage:
#   scripts/install-deps.sh [--with-s3] [--with-mongo]
#   eval "$(scripts/install-deps.sh [--with-s3] [--with-mongo] --print-path)"
#
# --print-path installs as well, then prints exactly one line on stdout:
#   export PATH=<tool dirs>:$PATH
# All progress messages go to stderr.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly APT_PACKAGES=(
	docker.io postgresql mariadb-server mariadb-client redis-server redis-tools
	pigz zstd gnupg ca-certificates openssl docker-compose
)

readonly BUF_VERSION=v1.75.0
readonly PROTOC_GEN_GO_VERSION=v1.36.12
readonly PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
readonly VERSITYGW_VERSION=v1.8.0
readonly FERRETDB_VERSION=v1.24.2

print_path=0 with_s3=0 with_mongo=0
for arg in "$@"; do
	case $arg in
	--print-path) print_path=1 ;;
	--with-s3) with_s3=1 ;;
	--with-mongo) with_mongo=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
		exit 0
		;;
	*) die "unknown argument: $arg (see --help)" ;;
	esac
done

TOOLS=$(tools_dir)
path_dirs=()

install_apt_packages() {
	local missing=() p
	for p in "${APT_PACKAGES[@]}"; do
		# dpkg -s also succeeds for removed-but-not-purged packages; require
		# the "install ok installed" state.
		if [[ $(dpkg-query -W -f '${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
			missing+=("$p")
		fi
	done
	# A docker client may exist without the engine (e.g. /usr/local/bin/docker).
	if ! command -v dockerd >/dev/null 2>&1 && [[ " ${missing[*]} " != *" docker.io "* ]]; then
		missing+=(docker.io)
	fi
	if ((${#missing[@]} == 0)); then
		log "apt packages: all present"
		return
	fi
	is_root || die "missing apt packages (${missing[*]}); run as root"
	log "apt packages: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Package scripts must not start the servers (tests start their own, on
	# their own ports). Container images usually ship a policy-rc.d that
	# forbids it; supply a temporary one where it is missing.
	local policy=/usr/sbin/policy-rc.d
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		# shellcheck disable=SC2064
		trap "rm -f '$policy'" EXIT
	fi
	apt-get update -q >&2
	apt-get install -y -q "${missing[@]}" >&2
	# apt-get install docker.io leaves an existing but broken package alone.
	if ! command -v dockerd >/dev/null 2>&1; then
		apt-get install -y -q --reinstall docker.io >&2
	fi
	command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after installing docker.io"
}

# go_outside_module runs "$@" in a fresh directory outside any module, with
# GOWORK off, so the project's go.mod/go.work never influences tool builds.
go_outside_module() {
	local tmp rc=0
	tmp=$(mktemp -d)
	(cd "$tmp" && GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" "$@") || rc=$?
	rm -rf "$tmp"
	return "$rc"
}

# install_go_tool NAME VERSION PACKAGE: go install PACKAGE@VERSION into
# $TOOLS/NAME@VERSION/, unless the binary is already there. The binary is
# built into a staging directory and renamed into place, so an interrupted
# or concurrent run never leaves a half-written binary behind.
install_go_tool() {
	local name=$1 version=$2 pkg=$3
	local dir=$TOOLS/$name@$version bin=${pkg##*/}
	path_dirs+=("$dir")
	if [[ -x $dir/$bin ]]; then
		log "$name $version: cached"
		return
	fi
	ensure_go
	log "$name $version: go install $pkg@$version (may take minutes)"
	local start=$SECONDS staging
	mkdir -p "$dir"
	staging=$(mktemp -d "$dir/.staging.XXXXXX")
	if ! go_outside_module env GOBIN="$staging" go install "$pkg@$version" >&2; then
		rm -rf "$staging"
		die "go install $pkg@$version failed"
	fi
	mv -f "$staging/$bin" "$dir/$bin"
	rm -rf "$staging"
	log "$name $version: built in $((SECONDS - start)) s"
}

install_proto_tools() {
	install_go_tool buf "$BUF_VERSION" github.com/bufbuild/buf/cmd/buf
	install_go_tool protoc-gen-go "$PROTOC_GEN_GO_VERSION" google.golang.org/protobuf/cmd/protoc-gen-go
	install_go_tool protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION" google.golang.org/grpc/cmd/protoc-gen-go-grpc
}

# install_versitygw: S3-compatible server (posix backend) for sink tests.
install_versitygw() {
	install_go_tool versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw
}

# install_ferretdb: MongoDB wire-protocol stand-in (no mongod is installable
# here). A plain `go install` builds a binary that panics at start-up because
# the module zip lacks build/version/version.txt, so build from a copy of the
# module source with that file written in.
install_ferretdb() {
	local version=$FERRETDB_VERSION
	local dir=$TOOLS/ferretdb@$version
	path_dirs+=("$dir")
	if [[ -x $dir/ferretdb ]]; then
		log "ferretdb $version: cached"
		return
	fi
	ensure_go
	log "ferretdb $version: building from module source (1-3 min)"
	local start=$SECONDS staging src
	mkdir -p "$dir"
	staging=$(mktemp -d "$dir/.staging.XXXXXX")
	src=$(go_outside_module go mod download -json "github.com/FerretDB/FerretDB@$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	[[ -n $src && -d $src ]] || die "go mod download github.com/FerretDB/FerretDB@$version gave no source dir"
	cp -r "$src" "$staging/src"
	chmod -R u+w "$staging/src"
	echo "$version" >"$staging/src/build/version/version.txt"
	if ! (cd "$staging/src" && GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
		go build -o "$staging/ferretdb" ./cmd/ferretdb) >&2; then
		rm -rf "$staging"
		die "building ferretdb $version failed"
	fi
	mv -f "$staging/ferretdb" "$dir/ferretdb"
	rm -rf "$staging"
	log "ferretdb $version: built in $((SECONDS - start)) s"
}

main() {
	install_apt_packages
	install_proto_tools
	if ((with_s3)); then install_versitygw; fi
	if ((with_mongo)); then install_ferretdb; fi
	if ((print_path)); then
		local IFS=:
		printf 'export PATH=%q:$PATH\n' "${path_dirs[*]}"
	fi
}

main
