package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/labelbackup/label-backup/plugins/redis/internal/resp"
	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

// Exec mode (Target.Options["mode"]="exec"): redis-cli runs inside the
// database's container through the host's executor (sdk.Exec), so the
// plugin needs no network path to the server. The connection's host,
// port, user and TLS settings go to redis-cli's argv, the password only to
// REDISCLI_AUTH in its environment.

// cliTool is the client run inside the container.
const cliTool = "redis-cli"

// prepare decides how to reach t: with the plugin's own client over the
// network (ex is nil) or with redis-cli inside the container, and with
// which connection: t.Connection or, when that is empty, one derived from
// the container.
func (p *Plugin) prepare(ctx context.Context, t sdk.Target) (*connInfo, sdk.Executor, error) {
	ex, err := sdk.ModeExecutor(ctx, t)
	if err != nil {
		return nil, nil, fmt.Errorf("redis: %w", err)
	}
	var ci *connInfo
	if t.Connection != "" {
		ci, err = parseConn(t.Connection, t.Database)
	} else {
		ci, err = deriveConn(ctx, t, ex != nil)
	}
	if err != nil {
		return nil, nil, err
	}
	ci.inContainer = ex != nil
	return ci, ex, nil
}

// cliArgs are redis-cli's connection options: everything of the connection
// but the password. TLS files are paths inside the container.
func (ci *connInfo) cliArgs() []string {
	a := []string{"-h", ci.host, "-p", strconv.Itoa(ci.port)}
	if ci.user != "" {
		a = append(a, "--user", ci.user)
	}
	if ci.tls {
		a = append(a, "--tls")
		if ci.tlsCA != "" {
			a = append(a, "--cacert", ci.tlsCA)
		}
		if ci.tlsCert != "" {
			a = append(a, "--cert", ci.tlsCert, "--key", ci.tlsKey)
		}
		if ci.tlsServerName != "" {
			a = append(a, "--sni", ci.tlsServerName)
		}
		if ci.insecure {
			a = append(a, "--insecure")
		}
	}
	return a
}

// cliEnv passes the password to redis-cli (5.0.3 or later) without
// putting it on a command line.
func (ci *connInfo) cliEnv() []string {
	if !ci.hasAuth {
		return nil
	}
	return []string{"REDISCLI_AUTH=" + ci.password}
}

// noPasswordWarning is the warning of a connection that gives a password
// to a server that needs none.
const noPasswordWarning = "the server requires no password, but the connection string gives one"

// authNotNeeded reports whether an AUTH error says the server has no
// password set.
func authNotNeeded(msg string) bool {
	return strings.Contains(msg, "without any password configured") || strings.Contains(msg, "no password is set")
}

// cli runs one command with redis-cli inside the container, within
// commandTimeout, and returns the reply as redis-cli prints it when its
// output is not a terminal, without the final newline. redis-cli exits 0
// after a refused AUTH or SELECT, or an error reply, saying so only in its
// output: those are errors here.
func (ci *connInfo) cli(ctx context.Context, ex sdk.Executor, args ...string) (reply, warning string, err error) {
	cmd := strings.ToUpper(args[0])
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	argv := ci.cliArgs()
	if ci.dbGiven {
		argv = append(argv, "-n", strconv.Itoa(ci.db))
	}
	out := &toolexec.CappedBuffer{Limit: 1 << 20}
	res, err := toolexec.RunWith(cctx, ex, toolexec.Command{
		Path: cliTool, Args: append(argv, args...), Env: ci.cliEnv(),
		Stdout: out, Secrets: ci.secrets, AllowEmptyOutput: true,
	})
	if err != nil {
		if ctx.Err() == nil && cctx.Err() != nil {
			return "", "", fmt.Errorf("redis: %s: %s: %s got no answer within %v: %w", ci.where(), cmd, cliTool, commandTimeout, sdk.ErrUnavailable)
		}
		return "", "", ci.cliErr(cmd, err)
	}
	for _, line := range strings.Split(res.Stderr, "\n") {
		line = strings.TrimSpace(line)
		if msg, ok := strings.CutPrefix(line, "AUTH failed: "); ok {
			if ci.user == "" && authNotNeeded(msg) {
				warning = noPasswordWarning
				continue
			}
			return "", "", ci.replyErr("AUTH", msg)
		}
		if rest, ok := strings.CutPrefix(line, "SELECT "); ok {
			if _, msg, ok := strings.Cut(rest, " failed: "); ok {
				if strings.Contains(msg, "out of range") {
					return "", "", fmt.Errorf("redis: %s: database %d does not exist (SELECT: %s): %w", ci.where(), ci.db, ci.scrub(msg), sdk.ErrNotFound)
				}
				return "", "", ci.replyErr("SELECT", msg)
			}
		}
	}
	return strings.TrimRight(out.String(), "\r\n"), warning, nil
}

// firstLine is the first line of s.
func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimRight(l, "\r")
}

// cliErr reports a redis-cli run that failed: it carries the tool's exit
// status and stderr, and the sentinel its stderr points to.
func (ci *connInfo) cliErr(op string, err error) error {
	var xe *sdk.ExitError
	if errors.As(err, &xe) {
		if xe.ExitCode == 126 || xe.ExitCode == 127 {
			return fmt.Errorf("redis: exec mode runs %s inside the database container, which cannot run it (%w): "+
				"use an image with redis-cli, or network mode: %w", cliTool, err, sdk.ErrNotFound)
		}
		if sentinel := classifyCLIStderr(xe.Stderr); sentinel != nil {
			return fmt.Errorf("redis: %s: %s: %w: %w", ci.where(), op, sentinel, err)
		}
	}
	return fmt.Errorf("redis: %s: %s: %w", ci.where(), op, err)
}

// classifyCLIStderr maps what a failed redis-cli printed to an SDK
// sentinel, or nil.
func classifyCLIStderr(stderr string) error {
	for _, line := range strings.Split(stderr, "\n") {
		line = strings.TrimSpace(line)
		if msg, ok := strings.CutPrefix(line, "AUTH failed: "); ok {
			return classifyReply("AUTH", resp.ErrorCode(msg), msg)
		}
		if msg, ok := strings.CutPrefix(line, "SYNC with master failed: -"); ok {
			if s := classifyReply("SYNC", resp.ErrorCode(msg), msg); s != nil {
				return s
			}
			continue
		}
		switch {
		case strings.HasPrefix(line, "Could not connect to Redis at "),
			strings.HasPrefix(line, "Error: Server closed the connection"),
			strings.HasPrefix(line, "Error: Connection reset by peer"):
			return sdk.ErrUnavailable
		case strings.HasPrefix(line, "I/O Error reading RDB payload"):
			return sdk.ErrIntegrity
		case strings.HasPrefix(line, "Unrecognized option or bad number of args"):
			return sdk.ErrUnsupported
		}
	}
	return nil
}

// validateExec is Validate through redis-cli inside the container: PING
// (with SELECT when a database is named) and INFO server.
func (p *Plugin) validateExec(ctx context.Context, ci *connInfo, ex sdk.Executor) (sdk.ValidateResult, error) {
	log := sdk.Logger(ctx)
	reply, warning, err := ci.cli(ctx, ex, "PING")
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	if warning != "" {
		log.Warn(warning, "host", ci.addr(), "in_container", true)
	}
	if reply != "PONG" {
		return sdk.ValidateResult{}, ci.cliReplyErr("PING", reply)
	}
	reply, _, err = ci.cli(ctx, ex, "INFO", "server")
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	if !strings.Contains(reply, "redis_version:") {
		return sdk.ValidateResult{}, ci.cliReplyErr("INFO", reply)
	}
	info, err := ci.checkInfo(reply)
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	log.Debug("connection validated", "host", ci.addr(), "in_container", true, "tls", ci.tls, "user", ci.user,
		"server_version", info["redis_version"], "mode", info["redis_mode"])
	return sdk.ValidateResult{ServerVersion: info["redis_version"]}, nil
}

// cliReplyErr reports a reply redis-cli printed that is not the expected
// one: an error reply, as a rule.
func (ci *connInfo) cliReplyErr(cmd, reply string) error {
	if reply == "" {
		return fmt.Errorf("redis: %s: %s: %s printed no reply: is this a Redis server?", ci.where(), cmd, cliTool)
	}
	return ci.replyErr(cmd, firstLine(reply))
}

// The lines redis-cli --rdb writes to stderr (Redis 5.0 to 8.x) announce
// the transfer's form and size: "writing N bytes to '-'" for a payload of
// known length; "until EOF marker", then "Transfer finished with success
// after N bytes" for a diskless transfer, whose N excludes the end marker.
var (
	cliSizedRE  = regexp.MustCompile(`SYNC sent to master, writing (\d+) bytes to '`)
	cliMarkedRE = regexp.MustCompile(`Transfer finished with success after (\d+) bytes`)
)

// dumpExec streams the server's RDB snapshot with redis-cli --rdb - run
// inside the container. redis-cli (like a replica) leaves the 40-byte end
// marker of a diskless transfer on its standard output, so the last 40
// bytes are held back until its report tells whether they are data; the
// payload goes through the same checks as the network client's (magic,
// length, end opcode, CRC-64).
func (p *Plugin) dumpExec(ctx context.Context, ci *connInfo, ex sdk.Executor, w io.Writer) (transferStats, []string, error) {
	var warnings []string
	st, received, err := ci.cliRDB(ctx, ex, w)
	var xe *sdk.ExitError
	if err != nil && received == 0 && ci.hasAuth && ci.user == "" && errors.As(err, &xe) && authNotNeeded(xe.Stderr) {
		// redis-cli --rdb gives up when AUTH fails, even when the server
		// needs no password; the network client goes on with a warning,
		// and so does this.
		sdk.Logger(ctx).Debug("the server needs no password: dumping again without one", "host", ci.addr())
		noAuth := *ci
		noAuth.hasAuth, noAuth.password = false, ""
		warnings = append(warnings, noPasswordWarning)
		st, _, err = noAuth.cliRDB(ctx, ex, w)
	}
	if err != nil {
		return st, nil, err
	}
	return st, append(warnings, dumpWarnings(ci, st)...), nil
}

// cliRDB runs redis-cli --rdb - once. received is what its stdout carried.
func (ci *connInfo) cliRDB(ctx context.Context, ex sdk.Executor, w io.Writer) (st transferStats, received int64, err error) {
	rw := newRDBWriter(w)
	hold := &tailHolder{w: rw}
	res, err := toolexec.RunWith(ctx, ex, toolexec.Command{
		Path: cliTool, Args: append(ci.cliArgs(), "--rdb", "-"), Env: ci.cliEnv(),
		Stdout: hold, Secrets: ci.secrets,
	})
	st.bytes = rw.n
	var xe *sdk.ExitError
	if errors.As(err, &xe) && fsyncBug(xe) {
		// redis-cli 6.2.0 to 6.2.4 wrote the whole payload, then failed
		// to fsync its standard output (redis/redis#9135).
		err, res.Stderr = nil, xe.Stderr
	}
	if err != nil {
		if ctx.Err() != nil {
			return st, hold.n, fmt.Errorf("redis: %s: dump cancelled after %d bytes: %w", ci.where(), hold.n, err)
		}
		return st, hold.n, ci.cliErr("redis-cli --rdb", err)
	}

	size, marked, ok := cliTransferSize(res.Stderr)
	switch {
	case !ok:
		return st, hold.n, fmt.Errorf("redis: %s: %s --rdb did not report the size of the transfer (stderr: %q): %w",
			ci.where(), cliTool, strings.TrimSpace(res.Stderr), sdk.ErrIntegrity)
	case marked && hold.n == size+eofMarkLen:
		// The held bytes are the end marker: drop them.
	case hold.n == size:
		if err := hold.flush(); err != nil {
			st.bytes = rw.n
			return st, hold.n, fmt.Errorf("redis: %s: %w", ci.where(), err)
		}
	default:
		return st, hold.n, fmt.Errorf("redis: %s: %s reported a payload of %d bytes, but %d bytes arrived: %w",
			ci.where(), cliTool, size, hold.n, sdk.ErrIntegrity)
	}
	checked, err := rw.finish()
	st = transferStats{diskless: marked, bytes: rw.n, version: rw.version, checked: checked}
	if err != nil {
		return st, hold.n, fmt.Errorf("redis: %s: %w", ci.where(), err)
	}
	return st, hold.n, nil
}

// fsyncBug recognises the exit of a redis-cli 6.2.0-6.2.4 that streamed the
// RDB to stdout completely and then failed on fsync.
func fsyncBug(xe *sdk.ExitError) bool {
	return xe.ExitCode == 1 && strings.Contains(xe.Stderr, "Transfer finished with success") &&
		strings.Contains(xe.Stderr, "Fail to fsync '-'")
}

// cliTransferSize reads the payload size from redis-cli --rdb's stderr, and
// whether the transfer was diskless (ended by a marker).
func cliTransferSize(stderr string) (size int64, marked, ok bool) {
	if m := cliMarkedRE.FindStringSubmatch(stderr); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		return n, true, err == nil
	}
	if m := cliSizedRE.FindStringSubmatch(stderr); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		return n, false, err == nil
	}
	return 0, false, false
}

// tailHolder passes everything written to it on to w except the last
// eofMarkLen bytes, which it holds until flush (or drops).
type tailHolder struct {
	w    io.Writer
	tail [eofMarkLen]byte
	held int
	n    int64 // bytes written to the holder
}

func (h *tailHolder) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if h.held+len(p) <= eofMarkLen {
		h.held += copy(h.tail[h.held:], p)
		return len(p), nil
	}
	// Everything but the last eofMarkLen bytes of tail+p goes out.
	out := h.held + len(p) - eofMarkLen
	if out <= h.held {
		if _, err := h.w.Write(h.tail[:out]); err != nil {
			return 0, err
		}
		kept := copy(h.tail[:], h.tail[out:h.held])
		h.held = kept + copy(h.tail[kept:], p)
		return len(p), nil
	}
	if h.held > 0 {
		if _, err := h.w.Write(h.tail[:h.held]); err != nil {
			return 0, err
		}
	}
	k := out - h.held
	if _, err := h.w.Write(p[:k]); err != nil {
		return 0, err
	}
	h.held = copy(h.tail[:], p[k:])
	return len(p), nil
}

// flush writes the held bytes.
func (h *tailHolder) flush() error {
	if h.held == 0 {
		return nil
	}
	_, err := h.w.Write(h.tail[:h.held])
	h.held = 0
	return err
}
