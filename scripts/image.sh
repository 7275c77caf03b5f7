#!/usr/bin/env bash
# Builds the sidecar image on a machine without an image registry.
#
#   scripts/image.sh [IMAGE]                 # default IMAGE: $LB_IMAGE or label-backup:local
#   scripts/image.sh --golang-stage [IMAGE]  # default IMAGE: label-backup:golang-stage
#
# What it does (idempotent; every step is cached):
#   1. Base image: when debian:bookworm-slim is not in the local engine, make
#      one with debootstrap (minbase) from the Debian mirror this machine's
#      apt is configured with, and `docker import` it. The rootfs tarball is
#      cached under $LB_STATE/image, keyed by a hash of the recipe, so a
#      later run (or an engine whose images were wiped) re-imports it in
#      seconds instead of bootstrapping again.
#   2. Binaries: built here with the host's Go (`make build`, plus any
#      plugins/<name>/cmd/label-backup-plugin-<name> the Makefile does not
#      list), into a small build context of their own.
#   3. Image: `DOCKER_BUILDKIT=0 docker build --network host --target
#      runtime-prebuilt`, the Dockerfile stage that takes prebuilt binaries
#      instead of compiling them in a golang image (which cannot be pulled
#      here). --network host lets apt inside the build reach the mirror.
#
# With a registry at hand none of this is needed: `docker build .` compiles
# in the golang stage (see docs/IMAGE.md). --golang-stage tests that path
# here: it makes a stand-in for the golang image from this machine's Go
# toolchain (labelbackup-local/golang:<go version>, never named golang:* so
# that it cannot shadow the real one) and builds the default target from the
# repository, compiling inside Docker (slow: every module from scratch).
#
# Prints the image reference on stdout; progress goes to stderr.
# Requires root (debootstrap, docker) and a running engine
# (scripts/docker-up.sh).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

golang_stage=0
if [[ ${1:-} == --golang-stage ]]; then
	golang_stage=1
	shift
	IMAGE=${1:-label-backup:golang-stage}
else
	IMAGE=${1:-${LB_IMAGE:-label-backup:local}}
fi
readonly IMAGE golang_stage
readonly BASE=debian:bookworm-slim
readonly SUITE=bookworm
# Bump when the rootfs recipe below changes: the cached tarball is rebuilt.
readonly BASE_RECIPE=lb-bookworm-minbase-1

STATE=$(state_dir)
readonly WORK=$STATE/image
mkdir -p "$WORK"

command -v docker >/dev/null 2>&1 || die "docker CLI not found; run scripts/install-deps.sh"
docker info >/dev/null 2>&1 || die "docker engine not reachable; run scripts/docker-up.sh"
ensure_go

# One build at a time: concurrent runs would debootstrap into the same place.
exec 8>"$WORK/image.lock"
flock 8

# debian_mirror prints the first Debian archive URI apt is configured with
# (deb822 .sources files and one-line .list files), without a trailing slash.
debian_mirror() {
	local f uri=""
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		uri=$(awk '
			/^[[:space:]]*#/ { next }
			tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i; next }
			$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }
		' "$f" | grep -v -e '-security' | grep '/debian/\?$' | head -n 1 || true)
		if [[ -n $uri ]]; then
			printf '%s\n' "${uri%/}"
			return
		fi
	done
	printf '%s\n' http://deb.debian.org/debian
}

# security_mirror prints the configured debian-security URI, or the one
# next to the main mirror.
security_mirror() {
	local main=$1 uri
	uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
		grep -v '^[[:space:]]*#' | grep -o '[a-z]*://[^[:space:]]*debian-security/\?' | head -n 1 || true)
	if [[ -n $uri ]]; then
		printf '%s\n' "${uri%/}"
	else
		printf '%s\n' "${main%/debian}/debian-security"
	fi
}

# ensure_base makes sure $BASE exists in the engine.
ensure_base() {
	if docker image inspect "$BASE" >/dev/null 2>&1; then
		log "base image $BASE: present"
		return
	fi
	local mirror security arch hash tarball
	mirror=$(debian_mirror)
	security=$(security_mirror "$mirror")
	arch=$(dpkg --print-architecture)
	hash=$(printf '%s\n' "$BASE_RECIPE" "$SUITE" "$arch" "$mirror" "$security" | sha256sum | cut -c1-16)
	tarball=$WORK/rootfs-$SUITE-$arch-$hash.tar
	if [[ ! -s $tarball ]]; then
		is_root || die "debootstrap needs root"
		if ! command -v debootstrap >/dev/null 2>&1; then
			log "installing debootstrap"
			DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >&2 ||
				{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >&2; }
		fi
		local dir=$WORK/rootfs.tmp start=$SECONDS
		rm -rf "$dir"
		log "base image: debootstrap --variant=minbase $SUITE from $mirror (a few minutes, once)"
		debootstrap --variant=minbase --arch="$arch" "$SUITE" "$dir" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
			{ tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed; see $WORK/debootstrap.log"; }
		# What the official slim image does: apt sources with updates and
		# security, and dpkg excluding documentation, man pages and locales
		# from every later install (the runtime stage's packages included).
		cat >"$dir/etc/apt/sources.list" <<-EOF
			deb $mirror $SUITE main
			deb $mirror $SUITE-updates main
			deb $security $SUITE-security main
		EOF
		cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<-'EOF'
			path-exclude /usr/share/doc/*
			path-include /usr/share/doc/*/copyright
			path-exclude /usr/share/man/*
			path-exclude /usr/share/groff/*
			path-exclude /usr/share/info/*
			path-exclude /usr/share/locale/*
			path-include /usr/share/locale/locale.alias
			path-exclude /usr/share/lintian/*
			path-exclude /usr/share/linda/*
		EOF
		printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$dir/etc/apt/apt.conf.d/docker-no-recommends"
		printf 'Acquire::Languages "none";\n' >"$dir/etc/apt/apt.conf.d/docker-no-languages"
		find "$dir/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
		find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
		rm -rf "$dir"/usr/share/{man,info,groff,lintian,linda}/* "$dir"/usr/share/locale/*/ \
			"$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
			"$dir"/var/log/*.log "$dir"/var/log/apt/* "$dir"/tmp/* "$dir"/dev/*
		tar --numeric-owner -C "$dir" -cf "$tarball.tmp" .
		mv "$tarball.tmp" "$tarball"
		rm -rf "$dir"
		# Older tarballs of other recipes are no longer used.
		find "$WORK" -maxdepth 1 -name 'rootfs-*.tar' ! -name "${tarball##*/}" -delete
		log "base image: rootfs made in $((SECONDS - start)) s ($(du -h "$tarball" | cut -f1), cached as $tarball)"
	else
		log "base image: using cached rootfs $tarball"
	fi
	docker import -c 'CMD ["bash"]' -c "LABEL lb.base.recipe=$hash" "$tarball" "$BASE" >/dev/null
	log "base image $BASE: imported"
}

# build_binaries builds the agent and every plugin into $1.
build_binaries() {
	local out=$1 cmd name
	mkdir -p "$out"
	make --no-print-directory -C "$repo_root" build BIN="$out" >&2
	# Plugins the Makefile does not list yet (e.g. a new sink).
	for cmd in "$repo_root"/plugins/*/cmd/label-backup-plugin-*; do
		[[ -d $cmd ]] || continue
		name=${cmd##*/}
		[[ -e $out/$name ]] && continue
		log "building $name (not in the Makefile's PLUGINS)"
		# Not in go.work yet either? Each module also builds alone.
		if ! (cd "${cmd%/cmd/*}" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$out/$name" "./cmd/$name" 2>/dev/null) &&
			! (cd "${cmd%/cmd/*}" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$out/$name" "./cmd/$name" >&2); then
			log "warning: $name does not build; the image goes without it"
			rm -f "$out/$name"
		fi
	done
}

# golang_stage_build builds the default target (the golang stage) with a
# stand-in golang image made from the host's Go toolchain.
golang_stage_build() {
	local goroot gover stand start
	goroot=$(go env GOROOT)
	gover=$(go env GOVERSION)
	stand=labelbackup-local/golang:${gover#go}
	if ! docker image inspect "$stand" >/dev/null 2>&1; then
		log "making $stand from $goroot and this machine's CA certificates"
		local sctx=$WORK/golang-context
		rm -rf "$sctx"
		mkdir -p "$sctx"
		cp -al "$goroot" "$sctx/go" 2>/dev/null || cp -a "$goroot" "$sctx/go"
		cp /etc/ssl/certs/ca-certificates.crt "$sctx/"
		printf '%s\n' "FROM $BASE" "COPY go /usr/local/go" \
			"COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt" \
			"ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
			"WORKDIR /go" >"$sctx/Dockerfile"
		DOCKER_BUILDKIT=0 docker build --force-rm -q -t "$stand" "$sctx" >"$WORK/golang-standin.log" 2>&1 ||
			{ cat "$WORK/golang-standin.log" >&2; die "building $stand failed"; }
		rm -rf "$sctx"
	fi
	start=$SECONDS
	log "docker build . with GOLANG_IMAGE=$stand (compiles every module inside Docker; log: $WORK/build-golang.log)"
	DOCKER_BUILDKIT=0 docker build --force-rm --network host --build-arg GOLANG_IMAGE="$stand" \
		-t "$IMAGE" "$repo_root" >"$WORK/build-golang.log" 2>&1 ||
		{ tail -n 40 "$WORK/build-golang.log" >&2; die "docker build failed; see $WORK/build-golang.log"; }
	log "image $IMAGE built in $((SECONDS - start)) s; size $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1 / 1e6}')"
	printf '%s\n' "$IMAGE"
}

ensure_base

if ((golang_stage)); then
	golang_stage_build
	exit 0
fi

ctx=$WORK/context
start=$SECONDS
rm -rf "$ctx"
mkdir -p "$ctx"
cp "$repo_root/Dockerfile" "$ctx/Dockerfile"
build_binaries "$ctx/prebuilt"
[[ -x $ctx/prebuilt/label-backup && -x $ctx/prebuilt/label-backup-plugin-postgres ]] || die "binaries missing in $ctx/prebuilt"
log "binaries built in $((SECONDS - start)) s: $(ls "$ctx/prebuilt" | tr '\n' ' ')"

start=$SECONDS
DOCKER_BUILDKIT=0 docker build --force-rm --network host --target runtime-prebuilt \
	--build-arg PREBUILT_DIR=prebuilt -t "$IMAGE" "$ctx" >"$WORK/build.log" 2>&1 ||
	{ tail -n 40 "$WORK/build.log" >&2; die "docker build failed; see $WORK/build.log"; }
log "image $IMAGE built in $((SECONDS - start)) s; size $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1 / 1e6}')"
# Replaced images stay dangling; drop those this script made.
docker image prune -f --filter label=lb.image=label-backup >/dev/null 2>&1 || true
printf '%s\n' "$IMAGE"
