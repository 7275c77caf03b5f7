#!/usr/bin/env bash
# Engine benchmark (issue "All four engines", item 7): PostgreSQL and MariaDB
# with ~500 MB of realistic data, measuring on the same data
#   raw   the dump tool alone to /dev/null (pg_dump -Fc -Z0 / mariadb-dump
#         --single-transaction, the plugins' arguments)
#   pigz  tool | pigz -p 2
#   zstd  tool | zstd -3 -T2
#   agent-gzip / agent-zstd: label-backup backup <container>, COMPRESSION=gzip
#         or zstd, LOCAL_BACKUP_PATH on /dev/shm, under /usr/bin/time -v
#   agent-none: the same with COMPRESSION=none (the agent's transport cost)
# The servers run on host loopback (docs: testenv §2), so that a restart of
# the shared Docker engine does not kill them mid-run; `label-backup backup`
# reads the labels of a labeled stand-in container (sleep, --restart
# unless-stopped, host network) whose backup.conn points at that server.
# MB/s are of RAW dump bytes (10^6): the raw tool's byte count for the shell
# pipelines, dump_size_bytes of the metadata for the agent. CPU seconds per
# process, and the server's (its process tree), are from /proc
# (scripts/bench-engines-run.py).
#
#   scripts/bench-engines.sh [postgres] [mariadb]      (default: both)
#
# Env: BENCH_SIZE_MB (500), BENCH_RUNS (2), BIN (/var/tmp/label-backup/bench-bin),
# BENCH_SKIP_BUILD=1 to use existing binaries, BENCH_OUT (results TSV,
# default /var/tmp/label-backup/bench-engines-<time>.tsv).
# Requires root, scripts/docker-up.sh, pigz, zstd, jq, /usr/bin/time, the
# host's postgresql and mariadb-server. Stops its servers and removes its
# containers, data and backups on exit.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo_root"

SIZE_MB=${BENCH_SIZE_MB:-500}
RUNS=${BENCH_RUNS:-2}
BIN=${BIN:-/var/tmp/label-backup/bench-bin}
IMAGE=labelbackup-itest/hostusr:1
RUNPY=$repo_root/scripts/bench-engines-run.py
ENGINES=("$@")
((${#ENGINES[@]})) || ENGINES=(postgres mariadb)

for c in docker pigz zstd jq python3 /usr/bin/time pg_dump mariadb-dump; do
	command -v "$c" >/dev/null || die "$c missing (apt-get install -y pigz zstd jq time postgresql-client mariadb-client)"
done
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE missing: run scripts/docker-up.sh"

if [[ ${BENCH_SKIP_BUILD:-} != 1 ]]; then
	make build BIN="$BIN" >/dev/null
fi

# Containers of an earlier run that died with the engine (only this script
# sets the label labelbackup.bench).
docker ps -aq --filter label=labelbackup.bench=1 --filter status=exited | xargs -r docker rm -v >/dev/null

mkdir -p /var/tmp/label-backup
WORK=$(mktemp -d /var/tmp/label-backup/bench-engines.XXXXXX)
chmod 755 "$WORK"
SHM=$(mktemp -d /dev/shm/lb-bench.XXXXXX)
OUT=${BENCH_OUT:-/var/tmp/label-backup/bench-engines-$(date -u +%Y%m%dT%H%M%SZ).tsv}
CONTAINERS=()
cleanup() {
	local c
	[[ -f $WORK/pg/data/postmaster.pid ]] && su postgres -c "$PGB/pg_ctl -D $WORK/pg/data -m immediate -w stop" >/dev/null 2>&1
	stop_mariadb
	for c in "${CONTAINERS[@]}"; do
		docker rm -f -v "$c" >/dev/null 2>&1 || log "could not remove container $c (engine down?): docker rm -f -v $c"
	done
	rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PGB=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d | sort -V | tail -n 1)

# carrier NAME TYPE CONN: the labeled stand-in container `label-backup
# backup` reads; it comes back by itself after an engine restart.
carrier() {
	CONTAINERS+=("$1")
	docker run -d --restart unless-stopped --name "$1" --network host -v /usr:/usr:ro \
		--label labelbackup.bench=1 --label backup.enabled=true --label "backup.type=$2" \
		--label 'backup.cron=0 3 1 1 *' --label backup.prefix=bench --label "backup.conn=$3" \
		"$IMAGE" sleep infinity >/dev/null
}
carrier_up() {
	local i
	for i in $(seq 120); do
		[[ $(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]] && return
		sleep 0.5
	done
	die "container $1 is not running"
}
load1() { cut -d' ' -f1 /proc/loadavg; }

# A word list (short, common words) for the text columns: compressible like
# real text, not like random bytes.
WORDS=(the of and to in is it you that he was for on are with as his they be at one have this from or had by
	word but what some we can out other were all there when up use your how said an each she which do their time
	if will way about many then them write would like so these her long make thing see him two has look more day
	could go come did number sound no most people my over know water than call first who may down side been now find
	order invoice customer shipped payment pending refund account address street city warehouse product item)

# ---- PostgreSQL ------------------------------------------------------------
start_postgres() {
	PG_PORT=$(free_port); PG_C=lbbench-pg-$$
	mkdir -p "$WORK/pg"; chown postgres: "$WORK/pg"
	su postgres -c "$PGB/initdb -D $WORK/pg/data -U postgres -E UTF8 --no-locale --no-sync --auth=trust" >/dev/null
	su postgres -c "$PGB/pg_ctl -D $WORK/pg/data -l $WORK/pg/log -w start -o '-p $PG_PORT -k $WORK/pg \
		-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
		-c shared_buffers=256MB -c max_wal_size=4GB'" >/dev/null
	PG_PID=$(head -n 1 "$WORK/pg/data/postmaster.pid")
	carrier "$PG_C" postgres "postgresql://postgres@127.0.0.1:$PG_PORT/bench?sslmode=disable"
}
psql_() { psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

load_postgres() {
	local arr n=${#WORDS[@]} chunk=500000 avg rows done=0
	arr="ARRAY[$(printf "'%s'," "${WORDS[@]}" | sed 's/,$//')]"
	psql_ -d postgres -c 'CREATE DATABASE bench'
	psql_ -d bench -c "CREATE TABLE events (id bigint, created_at timestamptz, user_id int, amount numeric(12,2),
		status text, note text, ref text)"
	local w="(${arr})[1+floor(random()*$n)::int]"
	insert() { # from to
		psql_ -d bench -c "INSERT INTO events SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval '7 seconds',
			(random()*100000)::int, round((random()*10000)::numeric, 2),
			(ARRAY['new','paid','shipped','cancelled','refunded'])[1 + g % 5],
			$w || ' ' || $w || ' ' || $w || ' ' || $w || ' ' || $w || ' ' || $w || ' ' || $w || ' ' || $w,
			substr(md5(g::text), 1, 16)
			FROM generate_series($1, $2) g"
	}
	insert 1 200000; done=200000
	avg=$(psql_ -d bench -c "SELECT ceil(avg(octet_length(e::text))) FROM events e")
	rows=$((SIZE_MB * 1000000 / avg))
	log "postgres: ~$avg bytes a row; loading $rows rows"
	while ((done < rows)); do
		local to=$((done + chunk > rows ? rows : done + chunk))
		insert $((done + 1)) $to; done=$to
	done
	psql_ -d bench -c 'VACUUM (FREEZE, ANALYZE) events' # no hint-bit writes during the dumps
}
raw_postgres() { echo "pg_dump -h 127.0.0.1 -p $PG_PORT -U postgres --format=custom --compress=0 --no-password bench"; }

# ---- MariaDB ---------------------------------------------------------------
start_mariadb() {
	MY_PORT=$(free_port); MY_C=lbbench-maria-$$
	mkdir -p "$WORK/my"; chown mysql: "$WORK/my"
	mariadb-install-db --no-defaults --user=mysql --datadir="$WORK/my/data" \
		--auth-root-authentication-method=normal --skip-test-db >/dev/null
	setsid mariadbd --no-defaults --user=mysql --datadir="$WORK/my/data" --port="$MY_PORT" \
		--bind-address=127.0.0.1 --socket="$WORK/my/sock" --pid-file="$WORK/my/pid" \
		--log-error="$WORK/my/err.log" --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
		--skip-log-bin --innodb-buffer-pool-size=1G --innodb-log-file-size=512M </dev/null >/dev/null 2>&1 &
	local i
	for i in $(seq 120); do
		mariadb-admin --no-defaults -uroot --socket="$WORK/my/sock" ping >/dev/null 2>&1 && break
		sleep 0.5
	done
	MY_PID=$(<"$WORK/my/pid")
	carrier "$MY_C" mysql "mysql://root@127.0.0.1:$MY_PORT/bench"
}
stop_mariadb() {
	local pid i
	pid=$(cat "$WORK/my/pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
	kill -9 "$pid" 2>/dev/null || true
}
my_() { mariadb --no-defaults --batch --skip-column-names -h127.0.0.1 -P"$MY_PORT" --protocol=TCP -uroot "$@"; }

load_mariadb() {
	local list n=${#WORDS[@]} chunk=500000 avg rows done=0
	list=$(printf "'%s'," "${WORDS[@]}" | sed 's/,$//')
	my_ -e 'CREATE DATABASE bench'
	my_ bench -e "CREATE TABLE events (id BIGINT PRIMARY KEY, created_at DATETIME, user_id INT,
		amount DECIMAL(12,2), status VARCHAR(16), note VARCHAR(255), ref CHAR(16)) ENGINE=InnoDB"
	local w="ELT(1+FLOOR(RAND()*$n), $list)"
	insert() {
		my_ bench -e "INSERT INTO events SELECT seq, TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq*7 SECOND,
			FLOOR(RAND()*100000), ROUND(RAND()*10000, 2),
			ELT(1 + seq % 5, 'new','paid','shipped','cancelled','refunded'),
			CONCAT_WS(' ', $w, $w, $w, $w, $w, $w, $w, $w), LEFT(MD5(seq), 16)
			FROM seq_${1}_to_${2}"
	}
	insert 1 200000; done=200000
	# An extended INSERT row: (v,'v',...) plus quotes and separators.
	avg=$(my_ bench -e "SELECT CEIL(AVG(LENGTH(CONCAT_WS(',', id, created_at, user_id, amount, status, note, ref)) + 11)) FROM events")
	rows=$((SIZE_MB * 1000000 / avg))
	log "mariadb: ~$avg bytes a row; loading $rows rows"
	while ((done < rows)); do
		local to=$((done + chunk > rows ? rows : done + chunk))
		insert $((done + 1)) $to; done=$to
	done
	my_ bench -e 'ANALYZE TABLE events' >/dev/null
}
raw_mariadb() {
	echo "mariadb-dump --no-defaults -h127.0.0.1 -P$MY_PORT --protocol=TCP -uroot --single-transaction --routines --triggers --events --hex-blob --default-character-set=utf8mb4 --max-allowed-packet=1G --no-tablespaces -- bench"
}

# ---- measuring -------------------------------------------------------------
printf 'engine\trun\tcase\twall_s\traw_bytes\tout_bytes\tMBps_raw\tpipeline_s\tMBps_pipeline\thost_rss_MiB\tserver_cpu_s\tload1_before\tload1_after\tprocs_cpu_s\n' >"$OUT"

# measure ENGINE RUN CASE CONTAINER 'command' — the command writes the output
# byte count (or metadata JSON for agent cases) to $WORK/res.
measure() {
	local engine=$1 run=$2 case=$3 ctr=$4 cmd=$5 acct l0 raw out rss pipe mbps mbpsp procs try
	for try in 1 2; do
		[[ $case == agent-* ]] && carrier_up "$ctr"
		sync; sleep 2
		l0=$(load1)
		acct=$(python3 "$RUNPY" "$SERVER_PID" "$cmd") && break
		# The shared Docker engine may restart under an agent run: once more.
		((try == 1)) || die "$engine $case failed: $(cat "$WORK/err" 2>/dev/null)"
		log "$engine $case failed, retrying: $(head -c 300 "$WORK/err" 2>/dev/null)"
		rm -rf "${SHM:?}"/*
	done
	local wall; wall=$(jq -r .wall_s <<<"$acct")
	procs=$(jq -r '.procs | to_entries | map("\(.key)=\(.value.cpu_s)") | join(" ")' <<<"$acct")
	rss=- pipe=- mbpsp=-
	if [[ $case == agent-* ]]; then
		raw=$(jq -r .dump_size_bytes "$WORK/res"); out=$(jq -r .backup_size_bytes "$WORK/res")
		pipe=$(jq -r .duration_seconds "$WORK/res")
		rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$WORK/time")
		mbpsp=$(awk -v b="$raw" -v s="$pipe" 'BEGIN{printf "%.1f", b/s/1e6}')
		rm -rf "${SHM:?}"/*
	else
		raw=${RAW_BYTES[$engine]}; out=$(<"$WORK/res")
	fi
	mbps=$(awk -v b="$raw" -v s="$wall" 'BEGIN{printf "%.1f", b/s/1e6}')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$engine" "$run" "$case" "$wall" "$raw" "$out" "$mbps" \
		"$pipe" "$mbpsp" "$rss" "$(jq -r .server_cpu_s <<<"$acct")" "$l0" "$(load1)" "$procs" | tee -a "$OUT"
}

declare -A RAW_BYTES
bench_engine() {
	local engine=$1 ctr raw r
	case $engine in
	postgres) start_postgres; ctr=$PG_C; SERVER_PID=$PG_PID ;;
	mariadb) start_mariadb; ctr=$MY_C; SERVER_PID=$MY_PID ;;
	*) die "unknown engine $engine (postgres, mariadb)" ;;
	esac
	local t0=$SECONDS
	log "$engine: loading ~$SIZE_MB MB"
	"load_$engine"
	raw=$("raw_$engine")
	RAW_BYTES[$engine]=$($raw 2>"$WORK/err" | wc -c)
	log "$engine: loaded in $((SECONDS - t0)) s; raw dump ${RAW_BYTES[$engine]} bytes"
	local agent="env LOCAL_BACKUP_PATH=$SHM PLUGIN_DIR=$BIN LOG_LEVEL=warn /usr/bin/time -v -o $WORK/time $BIN/label-backup backup $ctr >$WORK/res 2>$WORK/err"
	for r in $(seq "$RUNS"); do
		measure "$engine" "$r" raw "$ctr" "$raw >/dev/null 2>$WORK/err; echo - >$WORK/res"
		measure "$engine" "$r" pigz "$ctr" "set -o pipefail; $raw 2>$WORK/err | pigz -p 2 | wc -c >$WORK/res"
		measure "$engine" "$r" zstd "$ctr" "set -o pipefail; $raw 2>$WORK/err | zstd -3 -T2 -q | wc -c >$WORK/res"
		measure "$engine" "$r" agent-gzip "$ctr" "COMPRESSION=gzip $agent"
		measure "$engine" "$r" agent-zstd "$ctr" "COMPRESSION=zstd $agent"
		measure "$engine" "$r" agent-none "$ctr" "COMPRESSION=none $agent"
	done
	docker rm -f -v "$ctr" >/dev/null
	if [[ $engine == postgres ]]; then
		su postgres -c "$PGB/pg_ctl -D $WORK/pg/data -m fast -w stop" >/dev/null
	else
		stop_mariadb
	fi
	rm -rf "${WORK:?}/pg" "${WORK:?}/my"
}

log "results: $OUT"
for e in "${ENGINES[@]}"; do bench_engine "$e"; done

# Summary: median-free, both runs side by side.
echo
jq -R -s -r '
  split("\n") | map(select(length>0) | split("\t")) | .[1:] as $rows |
  ($rows | map(.[0]) | unique) as $engines |
  "| engine | case | run | MB/s (wall) | MB/s (metadata duration) | raw MB | out MB | host RSS MiB | server CPU s | load1 | CPU s by process |",
  "|---|---|---|---|---|---|---|---|---|---|---|",
  ($rows[] | "| \(.[0]) | \(.[2]) | \(.[1]) | \(.[6]) | \(.[8]) | \((.[4]|tonumber)/1e6*10|floor/10) | \(if .[5]=="-" then "-" else ((.[5]|tonumber)/1e6*10|floor/10) end) | \(.[9]) | \(.[10]) | \(.[11])→\(.[12]) | \(.[13]) |")
' "$OUT"
