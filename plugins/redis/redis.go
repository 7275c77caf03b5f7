// Package redis is Label Backup's Redis dumper plugin. It takes the
// snapshot the way a replica does: it asks the server for a full
// resynchronisation and streams the RDB file the server sends. In network
// mode (the default) it speaks the Redis protocol itself, so no redis-cli
// is needed next to the agent; in exec mode it runs redis-cli --rdb inside
// the database's container.
//
// # Connection strings
//
//	redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]
//	rediss://[[USER]:PASSWORD@]HOST[:PORT][/DB][?tls_ca=...&tls_cert=...&tls_key=...&tls_server_name=...&insecure_skip_verify=true]
//
// The port defaults to 6379. redis://:PASSWORD@host authenticates with the
// password alone (AUTH PASSWORD: the default user, or requirepass);
// redis://USER:PASSWORD@host as an ACL user (AUTH USER PASSWORD). A user
// info without ":" is rejected rather than guessed at. "@", "/" and ":" may
// appear unencoded in a password; "?" and "%" must be percent-encoded
// (%3F, %25). The password is sent only inside the AUTH command: it never
// appears in a process's argv, a log line or an error (server replies are
// scrubbed of it too).
//
// rediss:// connects with TLS 1.2 or later, verifying the server against
// the system's roots or the PEM bundle in tls_ca; tls_cert and tls_key
// (PEM files, together) give a client certificate, tls_server_name the name
// to verify when HOST is an address, and insecure_skip_verify=true turns
// verification off. Any other query parameter, or one of these on a
// redis:// URI, is rejected.
//
// /DB (or Target.Database) must be a database index. Validate checks it
// with SELECT, but a dump is always the whole server: an RDB snapshot holds
// every database (and the functions library), so a non-zero index only
// earns the dump a warning.
//
// # What the plugin does
//
// Validate connects, authenticates (an error reply such as WRONGPASS
// fails, unlike redis-cli, which exits 0 on it), sends PING (which must
// answer PONG), SELECT when a database is named, and INFO server for the
// version.
//
// Dump authenticates, sends REPLCONF capa eof and REPLCONF rdb-only 1
// (ignored by servers too old to know them), then SYNC. The server forks,
// sending a newline every second while it prepares the snapshot, then
// either "$<length>" and the RDB file it wrote to its disk
// (repl-diskless-sync no), or "$EOF:<40-byte mark>", the RDB streamed
// straight from the fork, and the mark again (repl-diskless-sync yes, the
// default since Redis 7.0; the server waits repl-diskless-sync-delay
// seconds, 5 by default, for other replicas first). The plugin streams the
// payload without the mark, and fails with ErrIntegrity unless it starts
// with the RDB magic "REDIS", has the announced length, and ends with the
// RDB end opcode and a matching CRC-64 (servers with rdbchecksum no write
// none; the dump then carries a warning).
//
// Like any replica, the first dump makes the server allocate its
// replication backlog (repl-backlog-size, 1 MiB by default), and each dump
// costs it a fork; with repl-diskless-sync no the snapshot also replaces
// the server's own RDB file (dbfilename in dir). The server logs each dump
// as a replica asking for synchronisation.
//
// An ACL user needs +ping +info +replconf +sync, and +select when the URI
// names a database: for example
//
//	ACL SETUSER backup on >PASSWORD +ping +info +replconf +sync +select
//
// # Exec mode
//
// With the label backup.mode=exec (Target.Options["mode"]="exec") the
// plugin runs the container's own redis-cli inside the container through
// the host's Docker exec (sdk.Exec), and never opens a connection itself:
//
//	redis-cli -h HOST -p PORT [--user USER] [--tls ...] PING         (Validate, with -n DB when one is named)
//	redis-cli -h HOST -p PORT [--user USER] [--tls ...] INFO server  (Validate)
//	redis-cli -h HOST -p PORT [--user USER] [--tls ...] --rdb -      (Dump)
//
// The password goes only to REDISCLI_AUTH in redis-cli's environment,
// never to its argv. HOST is the connection string's host as seen from
// inside the container (127.0.0.1 as a rule); tls_ca, tls_cert and
// tls_key name files inside the container and map to --cacert, --cert
// and --key, tls_server_name to --sni (redis-cli verifies the server's
// chain but not its name), insecure_skip_verify=true to --insecure. This
// needs the container's redis-cli to be 5.0.3 or later (REDISCLI_AUTH),
// 6.0 for --user and TLS, 6.2 for --insecure; a redis-cli that also finds
// REDISCLI_AUTH in the container's environment uses it when the
// connection string gives no password.
//
// redis-cli exits 0 after a refused AUTH or SELECT, or an error reply, and
// says so only in its output: Validate checks that output (PING must
// print PONG, INFO a redis_version) and fails as the network client does.
// redis-cli --rdb - streams the RDB to its standard output, which the host
// streams back; in a diskless transfer it leaves the 40-byte end marker
// on that output, so the plugin holds the last 40 bytes back until
// redis-cli's report on stderr ("writing N bytes", or "Transfer finished
// with success after N bytes") tells whether they are data, and fails with
// ErrIntegrity when the bytes that arrived do not match that report. The
// payload then passes the same checks as in network mode (magic, end
// opcode, CRC-64). A non-zero exit fails the dump with redis-cli's status
// and stderr (scrubbed of the password), classified like the network
// client's errors; exit status 126 or 127 (no redis-cli in the image) is
// ErrNotFound. Nothing is written inside the container, so a cancelled
// dump leaves nothing behind: the host stops redis-cli.
//
// # Zero-config
//
// Without the label backup.conn (Target.Connection empty) the connection
// is derived from the container's environment and command, which the host
// reports (Target.ContainerEnv, Target.ContainerCommand). The password is
// the first found of:
//
//  1. REDIS_PASSWORD, or the file REDIS_PASSWORD_FILE names, read inside
//     the container (the Bitnami images' variables; setting both is an
//     error);
//  2. --requirepass VALUE given to redis-server in the container's
//     entrypoint and command (the last one; an empty value means none);
//     the official image's "docker-entrypoint.sh --requirepass ..." form
//     counts too;
//  3. the last requirepass line of the configuration file given to
//     redis-server as its first argument, read inside the container with
//     cat through the host's executor (best effort: include directives
//     and ACL files are not followed, and an unreadable file is only
//     mentioned in the error should the server refuse the connection);
//  4. REDISCLI_AUTH in the container's environment.
//
// REDIS_USERNAME (or REDIS_USERNAME_FILE) names an ACL user, which then
// needs a password from those sources. The port is the last --port of the
// command, else the file's port, else REDIS_PORT_NUMBER (Bitnami), else
// 6379. A derived connection never uses TLS: a server with port 0 (TLS
// or a Unix socket only) needs backup.conn, as does one whose password is
// only in a shell command line (sh -c "redis-server ..."). In exec mode the server is reached at 127.0.0.1 inside the
// container (or ::1, or the first address it binds to when it binds to no
// loopback or wildcard address); in network mode at the address the host
// reaches the container at (Options["host"]: a shared network's address,
// or 127.0.0.1 with host networking).
//
// Redis needs no password by default, so finding none is not an error:
// the plugin connects without one. When the server then answers NOAUTH,
// the error says that no password was discoverable, lists every source
// looked at and asks for backup.conn; when it refuses a derived password,
// the error names the source it came from. Passwords from any source are
// never logged nor put in an error or argv.
//
// Errors carry SDK sentinels: ErrUnauthenticated for a refused AUTH (or a
// server that needs one), ErrPermission for NOPERM and protected mode,
// ErrUnavailable for refused, reset or timed-out connections, unresolvable
// hosts and a server still loading, ErrNotFound for a database index out of
// range, ErrIntegrity for a damaged or cut-off payload.
//
// # Restoring
//
// An RDB file is loaded by a Redis server only at start-up, so this plugin
// does not implement restore (it declares no restore capability); a
// restore is done by hand:
//
//  1. Unpack the backup and check it:
//     gunzip -c redis-...rdb.gz > dump.rdb && redis-check-rdb dump.rdb
//  2. Find where the server loads from: CONFIG GET dir, CONFIG GET
//     dbfilename (dump.rdb by default; /data/dump.rdb in the official image).
//  3. Stop it without letting it save over the file: SHUTDOWN NOSAVE (or
//     docker stop, when it has no save points).
//  4. Copy the file there under that name, owned by the server's user
//     (docker cp dump.rdb CONTAINER:/data/dump.rdb).
//  5. With appendonly yes the append-only file wins over the RDB at
//     start-up: move the appendonlydir (or appendonly.aof) aside and start
//     with appendonly no, then turn it back on with CONFIG SET appendonly
//     yes, which rewrites the AOF from the loaded data.
//  6. Start the server and check INFO keyspace.
package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/labelbackup/label-backup/plugins/redis/internal/resp"
	"github.com/labelbackup/label-backup/sdk"
)

const (
	// Name is the plugin's name.
	Name = "redis"
	// Version is the plugin's version.
	Version = "0.1.0"
	// FormatRDB is the format of the dumps: a Redis RDB snapshot.
	FormatRDB = "redis-rdb"
	// Extension is the raw dump's file extension.
	Extension = ".rdb"
)

// Plugin is the Redis dumper. It holds no state and is safe for concurrent
// use.
type Plugin struct{}

var _ sdk.Dumper = (*Plugin)(nil)

// New returns the Redis dumper.
func New() *Plugin { return &Plugin{} }

// Info describes the plugin. It declares no capability: restoring an RDB
// needs the server restarted on the file (see the package documentation).
func (p *Plugin) Info() sdk.Info {
	return sdk.Info{
		Name:             Name,
		Version:          Version,
		Kind:             sdk.KindDumper,
		DefaultExtension: Extension,
	}
}

// Validate connects, authenticates, pings, selects the database when one is
// named and reads the server's version: with the plugin's own client, or in
// exec mode with redis-cli inside the container.
func (p *Plugin) Validate(ctx context.Context, t sdk.Target) (sdk.ValidateResult, error) {
	ci, ex, err := p.prepare(ctx, t)
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	var res sdk.ValidateResult
	if ex != nil {
		res, err = p.validateExec(ctx, ci, ex)
	} else {
		res, err = p.validateNetwork(ctx, ci)
	}
	if err != nil {
		return sdk.ValidateResult{}, ci.explainAuth(err)
	}
	return res, nil
}

func (p *Plugin) validateNetwork(ctx context.Context, ci *connInfo) (sdk.ValidateResult, error) {
	s, err := dial(ctx, ci)
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	defer s.close()
	log := sdk.Logger(ctx)
	if s.authWarning != "" {
		log.Warn(s.authWarning, "host", ci.addr())
	}

	r, err := s.do("PING")
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	if r.IsError() {
		return sdk.ValidateResult{}, s.replyErr("PING", r)
	}
	if r.Type != resp.SimpleString || r.Str != "PONG" {
		return sdk.ValidateResult{}, s.unexpected("PING", r)
	}

	if ci.dbGiven {
		r, err := s.do("SELECT", strconv.Itoa(ci.db))
		if err != nil {
			return sdk.ValidateResult{}, err
		}
		if r.IsError() {
			if strings.Contains(r.Str, "out of range") {
				return sdk.ValidateResult{}, fmt.Errorf("redis: %s: database %d does not exist (SELECT: %s): %w", ci.where(), ci.db, s.scrub(r.Str), sdk.ErrNotFound)
			}
			return sdk.ValidateResult{}, s.replyErr("SELECT", r)
		}
	}

	r, err = s.do("INFO", "server")
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	if r.IsError() {
		return sdk.ValidateResult{}, s.replyErr("INFO", r)
	}
	if r.Type != resp.BulkString || r.Null {
		return sdk.ValidateResult{}, s.unexpected("INFO", r)
	}
	info, err := ci.checkInfo(r.Str)
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	log.Debug("connection validated", "host", ci.addr(), "tls", ci.tls, "user", ci.user, "server_version", info["redis_version"], "mode", info["redis_mode"])
	return sdk.ValidateResult{ServerVersion: info["redis_version"]}, nil
}

// checkInfo parses the reply of INFO server and checks that it comes from
// a Redis server that holds data.
func (ci *connInfo) checkInfo(text string) (map[string]string, error) {
	info := parseInfo(text)
	if info["redis_version"] == "" {
		return nil, fmt.Errorf("redis: %s: INFO server reported no redis_version: is this a Redis server?", ci.where())
	}
	if info["redis_mode"] == "sentinel" {
		return nil, fmt.Errorf("redis: %s is a Sentinel, which holds no data: back up the master it monitors: %w", ci.where(), sdk.ErrInvalidArgument)
	}
	return info, nil
}

// parseInfo reads the "key:value" lines of an INFO reply.
func parseInfo(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" || l[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// Dump streams the server's RDB snapshot into w.
func (p *Plugin) Dump(ctx context.Context, t sdk.Target, w io.Writer) (sdk.DumpResult, error) {
	st, warnings, err := p.dump(ctx, t, w)
	if err != nil {
		return sdk.DumpResult{}, err
	}
	return sdk.DumpResult{Format: FormatRDB, Extension: Extension, Bytes: st.bytes, Warnings: warnings}, nil
}

func (p *Plugin) dump(ctx context.Context, t sdk.Target, w io.Writer) (transferStats, []string, error) {
	ci, ex, err := p.prepare(ctx, t)
	if err != nil {
		return transferStats{}, nil, err
	}
	log := sdk.Logger(ctx)
	log.Debug("dump starting", "host", ci.addr(), "in_container", ci.inContainer, "tls", ci.tls, "user", ci.user)
	start := time.Now()
	var st transferStats
	var warnings []string
	if ex != nil {
		st, warnings, err = p.dumpExec(ctx, ci, ex, w)
	} else {
		st, warnings, err = p.sync(ctx, ci, w)
	}
	if err != nil {
		log.Debug("dump failed", "host", ci.addr(), "bytes", st.bytes, "error", err.Error())
		return st, nil, ci.explainAuth(err)
	}
	mode := "disk"
	if st.diskless {
		mode = "diskless"
	}
	log.Info("dump finished", "host", ci.addr(), "in_container", ci.inContainer, "bytes", st.bytes, "transfer", mode,
		"rdb_version", st.version, "checksum_verified", st.checked,
		"duration", time.Since(start).Round(time.Millisecond).String())
	return st, warnings, nil
}

// sync runs the replication handshake and streams the payload.
func (p *Plugin) sync(ctx context.Context, ci *connInfo, w io.Writer) (transferStats, []string, error) {
	s, err := dial(ctx, ci)
	if err != nil {
		return transferStats{}, nil, err
	}
	defer s.close()
	var warnings []string
	if s.authWarning != "" {
		warnings = append(warnings, s.authWarning)
	}
	// capa eof: we understand the diskless form. rdb-only (Redis 7.0+):
	// we want the snapshot only, not the replication stream after it, so
	// the server drops us once it is sent. Older servers refuse these;
	// that costs nothing but the diskless form, or a connection the
	// server keeps open after the payload.
	for _, args := range [][]string{{"REPLCONF", "capa", "eof"}, {"REPLCONF", "rdb-only", "1"}} {
		err := s.expectOK(args...)
		var se *serverError
		if err != nil && !(errors.As(err, &se) && classifyReply("REPLCONF", se.code(), se.msg) == nil) {
			return transferStats{}, nil, err
		}
		if err != nil {
			sdk.Logger(ctx).Debug("server refused an optional REPLCONF", "option", args[1], "error", err.Error())
		}
	}
	if err := s.conn.SetDeadline(time.Now().Add(commandTimeout)); err != nil {
		return transferStats{}, nil, s.netErr("SYNC", err)
	}
	if err := s.send("SYNC"); err != nil {
		return transferStats{}, nil, s.netErr("SYNC", err)
	}
	size, mark, err := s.readSyncHeader()
	if err != nil {
		return transferStats{}, nil, err
	}
	st, err := s.readPayload(size, mark, w)
	if err != nil {
		return st, nil, err
	}
	return st, append(warnings, dumpWarnings(ci, st)...), nil
}

// dumpWarnings are the warnings a finished dump carries.
func dumpWarnings(ci *connInfo, st transferStats) []string {
	var warnings []string
	if !st.checked {
		warnings = append(warnings, fmt.Sprintf("the RDB file (format version %d) carries no checksum (rdbchecksum no?): only its framing was verified", st.version))
	}
	if ci.dbGiven && ci.db != 0 {
		warnings = append(warnings, fmt.Sprintf("the dump holds every database of the server, not only database %d", ci.db))
	}
	return warnings
}
