package redis

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/labelbackup/label-backup/plugins/redis/internal/resp"
	"github.com/labelbackup/label-backup/sdk"
)

// Timeouts of a session. The replication stream has no overall deadline
// (the host's context bounds a dump), only an idle one: while it prepares
// the snapshot the server sends a newline every second, then data.
const (
	dialTimeout    = 10 * time.Second
	commandTimeout = 30 * time.Second
	idleTimeout    = 2 * time.Minute
)

// session is one authenticated connection to a server.
type session struct {
	ci   *connInfo
	conn net.Conn
	br   *bufio.Reader
	rd   *resp.Reader
	wbuf []byte
	// stop detaches the context watcher that closes conn on cancel.
	stop func() bool
	ctx  context.Context
	// authWarning is set when the server accepted the connection although
	// it needs no password.
	authWarning string
}

// serverError is an error reply of the server, scrubbed of secrets.
type serverError struct {
	cmd string // the command, upper case
	msg string // the reply's text, scrubbed
}

func (e *serverError) Error() string { return fmt.Sprintf("%s: server replied %q", e.cmd, e.msg) }

// code is the reply's first word ("WRONGPASS", "NOPERM", "ERR", ...).
func (e *serverError) code() string { return resp.ErrorCode(e.msg) }

// dial connects (with TLS for rediss://) and authenticates. The connection
// is closed as soon as ctx is done.
func dial(ctx context.Context, ci *connInfo) (*session, error) {
	var tcfg *tls.Config
	if ci.tls {
		var err error
		if tcfg, err = ci.tlsConfig(); err != nil {
			return nil, err
		}
	}
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", ci.addr())
	if err != nil {
		return nil, classifyNet(ctx, ci, "connecting", err)
	}
	if tcfg != nil {
		tc := tls.Client(conn, tcfg)
		hctx, cancel := context.WithTimeout(ctx, dialTimeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			return nil, classifyNet(ctx, ci, "TLS handshake", err)
		}
		conn = tc
	}
	s := &session{ci: ci, conn: conn, ctx: ctx}
	s.br = bufio.NewReaderSize(conn, 64<<10)
	s.rd = resp.NewReader(s.br)
	s.stop = context.AfterFunc(ctx, func() { conn.Close() })
	if err := s.auth(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *session) close() {
	s.stop()
	s.conn.Close()
}

// auth sends AUTH when the URI carries credentials and checks the reply:
// an error reply fails the session (redis-cli only warns).
func (s *session) auth() error {
	if !s.ci.hasAuth {
		return nil
	}
	args := []string{"AUTH", s.ci.password}
	if s.ci.user != "" {
		args = []string{"AUTH", s.ci.user, s.ci.password}
	}
	r, err := s.do(args...)
	if err != nil {
		return err
	}
	if r.IsError() {
		msg := s.scrub(r.Str)
		// A password given to a server that needs none: the connection
		// works, but the configuration is suspicious.
		if s.ci.user == "" && authNotNeeded(msg) {
			s.authWarning = noPasswordWarning
			return nil
		}
		return s.replyErr("AUTH", r)
	}
	if r.Type != resp.SimpleString || r.Str != "OK" {
		return s.unexpected("AUTH", r)
	}
	return nil
}

// do sends one command and reads its reply, within commandTimeout. Error
// replies come back as replies.
func (s *session) do(args ...string) (resp.Reply, error) {
	cmd := strings.ToUpper(args[0])
	if err := s.conn.SetDeadline(time.Now().Add(commandTimeout)); err != nil {
		return resp.Reply{}, s.netErr(cmd, err)
	}
	if err := s.send(args...); err != nil {
		return resp.Reply{}, s.netErr(cmd, err)
	}
	r, err := s.rd.ReadReply()
	if err != nil {
		return resp.Reply{}, s.netErr(cmd, err)
	}
	return r, nil
}

// send writes one command without reading a reply.
func (s *session) send(args ...string) error {
	s.wbuf = resp.AppendCommand(s.wbuf[:0], args...)
	_, err := s.conn.Write(s.wbuf)
	clear(s.wbuf) // it held the password during AUTH
	return err
}

// expectOK runs a command that must answer +OK.
func (s *session) expectOK(args ...string) error {
	r, err := s.do(args...)
	if err != nil {
		return err
	}
	if r.IsError() {
		return s.replyErr(strings.ToUpper(args[0]), r)
	}
	if r.Type != resp.SimpleString || r.Str != "OK" {
		return s.unexpected(strings.ToUpper(args[0]), r)
	}
	return nil
}

// scrub removes the secrets from a text that came from the server: an
// "unknown command" reply, for one, quotes the command's arguments.
func (s *session) scrub(msg string) string { return s.ci.scrub(msg) }

func (ci *connInfo) scrub(msg string) string { return scrub(msg, ci.secrets) }

func scrub(msg string, secrets []string) string {
	for _, sec := range secrets {
		msg = strings.ReplaceAll(msg, sec, "***")
	}
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	return msg
}

// replyErr turns an error reply into a classified Go error.
func (s *session) replyErr(cmd string, r resp.Reply) error { return s.ci.replyErr(cmd, r.Str) }

// replyErr turns the text of an error reply to cmd into a classified Go
// error.
func (ci *connInfo) replyErr(cmd, msg string) error {
	se := &serverError{cmd: cmd, msg: ci.scrub(msg)}
	if sentinel := classifyReply(cmd, se.code(), se.msg); sentinel != nil {
		return fmt.Errorf("redis: %s: %w: %w", ci.where(), sentinel, se)
	}
	return fmt.Errorf("redis: %s: %w", ci.where(), se)
}

// unexpected reports a reply of the wrong type, naming only its type: its
// content could be anything, even an echo of what we sent.
func (s *session) unexpected(cmd string, r resp.Reply) error {
	what := map[byte]string{resp.SimpleString: "a status", resp.Integer: "an integer", resp.BulkString: "a bulk string", resp.Array: "an array"}[r.Type]
	if r.Type == resp.SimpleString && len(r.Str) <= 32 {
		what = fmt.Sprintf("status %q", s.scrub(r.Str))
	}
	return fmt.Errorf("redis: %s: %s: unexpected reply (%s): is this a Redis server?", s.ci.where(), cmd, what)
}

// netErr classifies a failure of the connection itself.
func (s *session) netErr(op string, err error) error {
	return classifyNet(s.ctx, s.ci, op, err)
}

// readSyncHeader reads the master's answer to SYNC or PSYNC up to the
// payload: it skips the newlines sent while the snapshot is prepared and a
// +FULLRESYNC line, then parses "$<len>" (disk-based transfer) or
// "$EOF:<40-byte mark>" (diskless). It returns the length, or -1 and the
// mark.
func (s *session) readSyncHeader() (size int64, mark []byte, err error) {
	for {
		s.renewIdle()
		line, err := resp.ReadLine(s.br)
		if err != nil {
			return 0, nil, s.netErr("SYNC", err)
		}
		switch {
		case len(line) == 0:
			continue // keepalive newline
		case line[0] == '-':
			return 0, nil, s.replyErr("SYNC", resp.Reply{Type: resp.ErrorReply, Str: string(line[1:])})
		case line[0] == '+' && strings.HasPrefix(string(line), "+FULLRESYNC"):
			continue
		case line[0] == '$' && strings.HasPrefix(string(line), "$EOF:"):
			m := line[len("$EOF:"):]
			if len(m) != eofMarkLen {
				return 0, nil, fmt.Errorf("redis: %s: SYNC: the end marker is %d bytes long, not %d: %w", s.ci.where(), len(m), eofMarkLen, sdk.ErrIntegrity)
			}
			return -1, append([]byte(nil), m...), nil
		case line[0] == '$':
			digits := string(line[1:])
			n, err := strconv.ParseInt(digits, 10, 64)
			if err != nil || n < 0 || digits[0] == '+' {
				return 0, nil, fmt.Errorf("redis: %s: SYNC: bad payload length header: %w", s.ci.where(), sdk.ErrIntegrity)
			}
			return n, nil, nil
		default:
			return 0, nil, fmt.Errorf("redis: %s: SYNC: unexpected reply (a %d-byte line starting with %q): is this a Redis server?", s.ci.where(), len(line), line[:1])
		}
	}
}

// eofMarkLen is the length of a diskless transfer's end marker.
const eofMarkLen = 40

// transferStats describes a finished transfer.
type transferStats struct {
	diskless bool
	bytes    int64
	version  int
	checked  bool // the RDB's CRC-64 was verified
}

// readPayload streams the RDB payload into w: exactly size bytes, or (size
// < 0) everything up to the end marker mark, which is not written.
func (s *session) readPayload(size int64, mark []byte, w io.Writer) (transferStats, error) {
	rw := newRDBWriter(w)
	st := transferStats{diskless: size < 0}
	src := &idleReader{s: s}
	var err error
	if size >= 0 {
		err = copyExact(rw, src, size)
	} else {
		err = copyUntilMark(rw, src, mark)
	}
	st.bytes, st.version = rw.n, rw.version
	if err != nil {
		if rw.werr != nil {
			return st, err // the writer's own error, unchanged
		}
		if s.ctx.Err() != nil {
			return st, fmt.Errorf("redis: %s: dump cancelled after %d bytes: %w", s.ci.where(), rw.n, s.ctx.Err())
		}
		if errors.Is(err, sdk.ErrIntegrity) {
			return st, err
		}
		return st, s.netErr("SYNC", err)
	}
	st.checked, err = rw.finish()
	return st, err
}

// idleReader reads from the session's buffered reader, renewing the idle
// deadline before each read.
type idleReader struct{ s *session }

func (r *idleReader) Read(p []byte) (int, error) {
	r.s.renewIdle()
	return r.s.br.Read(p)
}

// renewIdle moves the read deadline idleTimeout ahead. Its error is
// ignored: it fails only on a closed connection, and the read that follows
// reports that (after any bytes still buffered).
func (s *session) renewIdle() { _ = s.conn.SetReadDeadline(time.Now().Add(idleTimeout)) }

// copyBufSize is the size of the transfer's reads.
const copyBufSize = 1 << 20

// copyExact copies exactly size bytes from src to w. A stream that ends
// early is an integrity failure.
func copyExact(w io.Writer, src io.Reader, size int64) error {
	buf := make([]byte, min(int64(copyBufSize), max(size, 1)))
	left := size
	for left > 0 {
		n, err := src.Read(buf[:min(int64(len(buf)), left)])
		if n > 0 {
			left -= int64(n)
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("redis: the server closed the connection after %d of %d bytes of the RDB payload: %w", size-left, size, sdk.ErrIntegrity)
			}
			return err
		}
	}
	return nil
}

// copyUntilMark copies src to w up to the first occurrence of mark, which
// is not written. The last len(mark) bytes are always held back, since they
// may be the start of the mark. A stream that ends before the mark is an
// integrity failure.
func copyUntilMark(w io.Writer, src io.Reader, mark []byte) error {
	m := len(mark)
	buf := make([]byte, copyBufSize+m)
	held := 0 // bytes at buf[:held] not yet written, at most m
	var total int64
	for {
		n, err := src.Read(buf[held:])
		if n > 0 {
			total += int64(n)
			end := held + n
			// Only occurrences ending in the new bytes are new.
			from := max(0, held-(m-1))
			if i := bytes.Index(buf[from:end], mark); i >= 0 {
				if _, werr := w.Write(buf[:from+i]); werr != nil {
					return werr
				}
				return nil
			}
			if keep := min(end, m); end > keep {
				if _, werr := w.Write(buf[:end-keep]); werr != nil {
					return werr
				}
				copy(buf, buf[end-keep:end])
				held = keep
			} else {
				held = end
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("redis: the server closed the connection after %d bytes, before the end marker of the RDB payload: %w", total, sdk.ErrIntegrity)
			}
			return err
		}
	}
}
