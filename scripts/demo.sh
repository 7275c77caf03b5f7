#!/usr/bin/env bash
# The demo ("make demo"): on a fresh machine, installs and starts what is
# needed, runs a PostgreSQL container carrying the backup labels of the
# README, runs the agent with local storage (the embedded defaults), shows
# the first backups and their metadata, proves one restores, and cleans up.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo_root"
ensure_go
eval "$(bash scripts/install-deps.sh --print-path)"
bash scripts/docker-up.sh

STATE=$(state_dir)/demo
BIN=$STATE/bin
BACKUPS=$STATE/backups
CONTAINER=labelbackup-demo-postgres
PASSWORD=demo-pass-$RANDOM
HTTP=127.0.0.1:18080
agent_pid=

cleanup() {
	if [[ -n $agent_pid ]]; then
		kill "$agent_pid" 2>/dev/null || true
		wait "$agent_pid" 2>/dev/null || true
	fi
	docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
	rm -rf "$STATE/pgdata" "$BACKUPS"
}
trap cleanup EXIT
cleanup

free_port() {
	local p
	for p in $(seq 25432 25532); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	die "no free port in 25432-25532"
}

log "building the agent and its plugins"
make --no-print-directory build BIN="$BIN" >&2

PORT=$(free_port)
PG_UID=$(id -u postgres) PG_GID=$(id -g postgres)
mkdir -p "$STATE/pgdata"
chown "$PG_UID:$PG_GID" "$STATE/pgdata"
chmod 700 "$STATE/pgdata"
printf '%s\n' "$PASSWORD" >"$STATE/pgdata/pwfile"
chown "$PG_UID:$PG_GID" "$STATE/pgdata/pwfile"
RUN=(docker run --network host --user "$PG_UID:$PG_GID" -v /usr:/usr:ro -v "$STATE/pgdata:/data")
log "initialising PostgreSQL"
"${RUN[@]}" --rm labelbackup-itest/hostusr:1 initdb -D /data/pg -U postgres -E UTF8 --no-locale \
	--auth-local=trust --auth-host=scram-sha-256 --pwfile=/data/pwfile >/dev/null
rm -f "$STATE/pgdata/pwfile"

log "starting a PostgreSQL container labeled for backups (port $PORT)"
"${RUN[@]}" -d --name "$CONTAINER" --tmpfs "/run/postgresql:uid=$PG_UID,gid=$PG_GID" \
	--label labelbackup.itest=1 \
	--label backup.enabled=true \
	--label backup.type=postgres \
	--label 'backup.cron=*/10 * * * * *' \
	--label "backup.conn=postgresql://postgres:$PASSWORD@127.0.0.1:$PORT/myapp?sslmode=disable" \
	--label backup.dest=local \
	--label backup.prefix=postgres-backups \
	labelbackup-itest/hostusr:1 postgres -D /data/pg -p "$PORT" -c listen_addresses=127.0.0.1 >/dev/null
for _ in $(seq 100); do docker exec "$CONTAINER" pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.2; done
psql_c() { docker exec -i "$CONTAINER" psql -X -q -A -t -v ON_ERROR_STOP=1 -U postgres -h /run/postgresql -p "$PORT" "$@"; }
psql_c -d postgres -c 'CREATE DATABASE myapp'
psql_c -d myapp <<'SQL'
CREATE TABLE customers (id serial PRIMARY KEY, name text);
INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 10000) g;
SQL

log "starting the agent: LOCAL_BACKUP_PATH=$BACKUPS, backups every 10 seconds"
LOCAL_BACKUP_PATH=$BACKUPS PLUGIN_DIR=$BIN HTTP_ADDR=$HTTP "$BIN/label-backup" 2>"$STATE/agent.log" &
agent_pid=$!

log "waiting for two backups (about 20 seconds)"
for _ in $(seq 120); do
	n=$({ find "$BACKUPS" -name '*.dump.gz.metadata.json' 2>/dev/null || true; } | wc -l)
	((n >= 2)) && break
	kill -0 "$agent_pid" 2>/dev/null || { cat "$STATE/agent.log" >&2; die "the agent exited"; }
	sleep 0.5
done
((n >= 2)) || { cat "$STATE/agent.log" >&2; die "no backups after 60 seconds"; }

echo
echo "== agent log (excerpt)"
grep -E 'backup (scheduled|started|succeeded|failed)|plugin' "$STATE/agent.log" | head -12
echo
echo "== backups under LOCAL_BACKUP_PATH"
(cd "$BACKUPS" && find . -type f | sort | xargs ls -l)
first=$(find "$BACKUPS" -name '*.dump.gz' | sort | head -1)
echo
echo "== ${first#"$BACKUPS"/}.metadata.json"
cat "$first.metadata.json"
echo
echo "== GET http://$HTTP/jobs"
curl -fsS "http://$HTTP/jobs" | head -30
echo
echo "== restoring with: gunzip -c <file> | pg_restore -d <db>"
psql_c -d postgres -c 'CREATE DATABASE restored'
gunzip -c "$first" | docker exec -i "$CONTAINER" pg_restore -U postgres -h /run/postgresql -p "$PORT" -d restored
echo "rows in the restored database: $(psql_c -d restored -c 'SELECT count(*) FROM customers')"
echo
log "demo finished; cleaning up"
