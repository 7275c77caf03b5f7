#!/usr/bin/env bash
# Ensures a Docker engine is running and the integration-test image exists.
#
#   scripts/docker-up.sh
#
# Idempotent: a running engine is left alone; dockerd is started only when
# `docker info` fails. A dockerd started here keeps running after the script
# exits (scripts/docker-down.sh --daemon stops it).
#
# The image labelbackup-itest/hostusr:1 is a tiny rootfs (no registry is
# reachable, so it is made with `docker import`): containers mount the host's
# /usr read-only and run the host's postgres/mariadb/redis binaries. Its
# /etc/passwd and /etc/group are copied from this machine (UIDs differ between
# machines), so the image carries a hash of them in the label lb.passwd and
# is rebuilt whenever they (or this recipe) change.
#
# Requires root and scripts/install-deps.sh to have run.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly IMAGE=labelbackup-itest/hostusr:1
readonly RECIPE=hostusr-recipe-1 # bump when the rootfs layout changes
readonly DOCKER_PID_FILE=/var/run/docker.pid
readonly START_TIMEOUT=60

STATE=$(state_dir)

command -v docker >/dev/null 2>&1 || die "docker CLI not found; run scripts/install-deps.sh"

# Serialize concurrent runs (two test jobs must not start two daemons).
exec 9>"$STATE/docker-up.lock"
flock 9

docker_ok() {
	docker info >/dev/null 2>&1
}

pid_alive() {
	[[ -n $1 ]] && kill -0 "$1" 2>/dev/null
}

start_dockerd() {
	if docker_ok; then
		log "docker engine: already running"
		return
	fi
	is_root || die "starting dockerd needs root"
	command -v dockerd >/dev/null 2>&1 || die "dockerd not found; run scripts/install-deps.sh"

	local pid="" started=0
	if [[ -f $DOCKER_PID_FILE ]]; then
		pid=$(<"$DOCKER_PID_FILE")
		if pid_alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]; then
			# Probably still starting (or another run started it); wait for it
			# instead of starting a second daemon that would refuse anyway.
			log "docker engine: dockerd (pid $pid) exists but is not answering yet; waiting"
		else
			log "docker engine: removing stale $DOCKER_PID_FILE (pid ${pid:-?} is not a running dockerd)"
			rm -f "$DOCKER_PID_FILE"
			pid=""
		fi
	fi

	local logf=$STATE/dockerd.log start=$SECONDS
	if [[ -z $pid ]]; then
		log "docker engine: starting dockerd (log: $logf)"
		# No bridge/iptables: tests use --network host only. setsid, stdin from
		# /dev/null, output to the log and every other descriptor closed: the
		# daemon outlives this script and holds none of the caller's pipes
		# (a CI runner waits for those to close).
		(
			for f in /proc/"$BASHPID"/fd/*; do
				fd=${f##*/}
				if ((fd > 2)); then eval "exec $fd>&-"; fi
			done
			exec setsid dockerd --iptables=false --bridge=none
		) </dev/null >>"$logf" 2>&1 &
		pid=$! started=1
		disown "$pid" 2>/dev/null || true
	fi

	local deadline=$((SECONDS + START_TIMEOUT))
	until docker_ok; do
		if ! pid_alive "$pid" && ! pid_alive "$(cat "$DOCKER_PID_FILE" 2>/dev/null)"; then
			tail -n 30 "$logf" >&2 || true
			die "dockerd (pid $pid) exited; see $logf"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 30 "$logf" >&2 || true
			die "docker engine not ready after ${START_TIMEOUT}s; see $logf"
		fi
		sleep 0.25
	done
	if ((started)); then
		# Remember the daemon we started, for docker-down.sh --daemon.
		cat "$DOCKER_PID_FILE" >"$STATE/dockerd.pid" 2>/dev/null || echo "$pid" >"$STATE/dockerd.pid"
	fi
	log "docker engine: ready after $((SECONDS - start)) s"
}

# The users whose files the database containers own.
readonly USERS=(root postgres redis mysql)

ensure_image() {
	local passwd group pgbin hash have
	passwd=$(getent passwd "${USERS[@]}") || die "getent passwd ${USERS[*]} failed: a user is missing; run scripts/install-deps.sh"
	group=$(getent group "${USERS[@]}") || die "getent group ${USERS[*]} failed: a group is missing; run scripts/install-deps.sh"
	# Newest installed PostgreSQL major (15 on Debian 12); its bin dir is not
	# on the default PATH.
	pgbin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
	pgbin=${pgbin:-/usr/lib/postgresql/15/bin}
	local env_path="PATH=$pgbin:/usr/sbin:/usr/bin"
	hash=$(printf '%s\n%s\n%s\n%s\n' "$RECIPE" "$env_path" "$passwd" "$group" | sha256sum | cut -c1-32)

	have=$(docker image inspect -f '{{index .Config.Labels "lb.passwd"}}' "$IMAGE" 2>/dev/null || true)
	if [[ $have == "$hash" ]]; then
		log "image $IMAGE: up to date"
		return
	fi
	local old_id=""
	if [[ -n $have ]] || docker image inspect "$IMAGE" >/dev/null 2>&1; then
		log "image $IMAGE: users or recipe changed; rebuilding"
		old_id=$(docker image inspect -f '{{.Id}}' "$IMAGE")
	fi

	local start=$SECONDS tmp r d
	tmp=$(mktemp -d "$STATE/rootfs.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	r=$tmp/rootfs
	mkdir -p "$r"/{usr,etc,tmp,data,run,var/lib,dev,proc,sys}
	chmod 0755 "$r" "$r"/{usr,etc,data,run,var,var/lib,dev,proc,sys}
	chmod 1777 "$r/tmp"
	for d in bin sbin lib lib64; do ln -s "usr/$d" "$r/$d"; done
	ln -s ../run "$r/var/run" # libpq looks for sockets in /var/run/postgresql
	printf '%s\n' "$passwd" >"$r/etc/passwd"
	printf '%s\n' "$group" >"$r/etc/group"
	chmod 0644 "$r/etc/passwd" "$r/etc/group"
	tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$tmp/rootfs.tar" .
	docker import \
		-c "ENV $env_path" \
		-c "LABEL lb.passwd=$hash" \
		-c "LABEL labelbackup.itest.image=1" \
		"$tmp/rootfs.tar" "$IMAGE" >/dev/null
	rm -rf "$tmp"
	trap - EXIT
	# Confirm the label stuck (an engine ignoring LABEL would rebuild forever).
	have=$(docker image inspect -f '{{index .Config.Labels "lb.passwd"}}' "$IMAGE")
	[[ $have == "$hash" ]] || die "image $IMAGE: label lb.passwd not set after import"
	if [[ -n $old_id ]]; then
		# Drop the replaced image unless a container still uses it.
		docker rmi "$old_id" >/dev/null 2>&1 || true
	fi
	log "image $IMAGE: imported in $((SECONDS - start)) s"
}

start_dockerd
ensure_image
