// Package redis is Label Backup's Redis dumper plugin. It speaks the Redis
// protocol itself (no redis-cli needed) and takes the snapshot the way a
// replica, or redis-cli --rdb, does: it asks the server for a full
// resynchronisation and streams the RDB file the server sends.
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
// named and reads the server's version.
func (p *Plugin) Validate(ctx context.Context, t sdk.Target) (sdk.ValidateResult, error) {
	ci, err := parseConn(t.Connection, t.Database)
	if err != nil {
		return sdk.ValidateResult{}, err
	}
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
	info := parseInfo(r.Str)
	version := info["redis_version"]
	if version == "" {
		return sdk.ValidateResult{}, fmt.Errorf("redis: %s: INFO server reported no redis_version: is this a Redis server?", ci.where())
	}
	if info["redis_mode"] == "sentinel" {
		return sdk.ValidateResult{}, fmt.Errorf("redis: %s is a Sentinel, which holds no data: back up the master it monitors: %w", ci.where(), sdk.ErrInvalidArgument)
	}
	log.Debug("connection validated", "host", ci.addr(), "tls", ci.tls, "user", ci.user, "server_version", version, "mode", info["redis_mode"])
	return sdk.ValidateResult{ServerVersion: version}, nil
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
	ci, err := parseConn(t.Connection, t.Database)
	if err != nil {
		return transferStats{}, nil, err
	}
	log := sdk.Logger(ctx)
	log.Debug("dump starting", "host", ci.addr(), "tls", ci.tls, "user", ci.user)
	start := time.Now()
	st, warnings, err := p.sync(ctx, ci, w)
	if err != nil {
		log.Debug("dump failed", "host", ci.addr(), "bytes", st.bytes, "error", err.Error())
		return st, nil, err
	}
	mode := "disk"
	if st.diskless {
		mode = "diskless"
	}
	log.Info("dump finished", "host", ci.addr(), "bytes", st.bytes, "transfer", mode,
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
	if !st.checked {
		warnings = append(warnings, fmt.Sprintf("the RDB file (format version %d) carries no checksum (rdbchecksum no?): only its framing was verified", st.version))
	}
	if ci.dbGiven && ci.db != 0 {
		warnings = append(warnings, fmt.Sprintf("the dump holds every database of the server, not only database %d", ci.db))
	}
	return st, warnings, nil
}
