#!/usr/bin/env bash
# Removes the integration-test containers (label labelbackup.itest=1) and
# nothing else. The engine keeps running unless --daemon is given, in which
# case the dockerd started by scripts/docker-up.sh (its pid is recorded in the
# state dir) is stopped too; a dockerd started some other way is left alone.
#
#   scripts/docker-down.sh [--daemon]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_daemon=0
for arg in "$@"; do
	case $arg in
	--daemon) stop_daemon=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
		exit 0
		;;
	*) die "unknown argument: $arg (see --help)" ;;
	esac
done

STATE=$(state_dir)

if docker info >/dev/null 2>&1; then
	mapfile -t ids < <(docker ps -aq --filter label=labelbackup.itest=1)
	if ((${#ids[@]})); then
		log "removing ${#ids[@]} itest container(s)"
		docker rm -f "${ids[@]}" >/dev/null
	else
		log "no itest containers"
	fi
else
	log "docker engine not running; no containers to remove"
fi

if ((stop_daemon)); then
	pidf=$STATE/dockerd.pid
	pid=$(cat "$pidf" 2>/dev/null || true)
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]; then
		log "stopping dockerd (pid $pid)"
		kill -TERM "$pid"
		for _ in $(seq 1 60); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -0 "$pid" 2>/dev/null && die "dockerd (pid $pid) still running after 30 s"
		log "dockerd stopped"
	else
		log "no dockerd started by docker-up.sh is running; leaving the engine alone"
	fi
	rm -f "$pidf"
fi
