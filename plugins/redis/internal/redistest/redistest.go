// Package redistest runs throw-away redis-server processes for tests, on
// 127.0.0.1 and a free port, in a temporary directory, with a password,
// no persistence (empty --save, --appendonly no) and DEBUG enabled for local
// connections. It also has a small client for the tests' own commands.
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/redis/internal/resp"
)

// installHint is what to do when the Redis binaries are missing.
const installHint = "run scripts/install-deps.sh (it installs redis-server and redis-tools), or set LB_REDIS_BINDIR to the directory holding redis-server, redis-check-rdb and redis-cli"

// FindBin finds one of the Redis binaries: in $LB_REDIS_BINDIR when set,
// else in PATH.
func FindBin(name string) (string, error) {
	if d := os.Getenv("LB_REDIS_BINDIR"); d != "" {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
		return "", fmt.Errorf("redistest: %s not found in LB_REDIS_BINDIR=%s: %s", name, d, installHint)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("redistest: %s not found in PATH: %s", name, installHint)
	}
	return p, nil
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a moment
// ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Options configure a server.
type Options struct {
	// Password is the default user's password (requirepass); "" for none.
	Password string
	// Dir is the server's working directory (where it loads and saves
	// RDB files); a new temporary directory when empty, removed by Stop.
	Dir string
	// Args are extra arguments, e.g. "--dbfilename", "x.rdb".
	Args []string
	// TLS, when set, adds a TLS port (TLSPort) next to the plain one.
	TLS *TLSOptions
}

// TLSOptions are the PEM files of a TLS port.
type TLSOptions struct {
	CertFile, KeyFile string
	// CAFile verifies client certificates.
	CAFile string
	// AuthClients requires a client certificate signed by CAFile.
	AuthClients bool
}

// Server is a running redis-server.
type Server struct {
	Port     int
	Password string
	Dir      string
	// TLSPort is the TLS port, when Options.TLS was set.
	TLSPort int

	ownDir  bool
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile string
}

// New starts a server that is stopped when t ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Start starts a server and waits until it answers PING. The caller must
// Stop it.
func Start(opts Options) (*Server, error) {
	bin, err := FindBin("redis-server")
	if err != nil {
		return nil, err
	}
	s := &Server{Password: opts.Password, Dir: opts.Dir}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "lbredistest-"); err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
		s.ownDir = true
	}
	s.logFile = filepath.Join(s.Dir, "redis-server.log")
	// The free port may be taken before the server binds it: try a few.
	for attempt := 0; ; attempt++ {
		if s.Port, err = FreePort(); err != nil {
			s.removeDir()
			return nil, fmt.Errorf("redistest: %w", err)
		}
		args := opts.Args
		if opts.TLS != nil {
			if s.TLSPort, err = FreePort(); err != nil {
				s.removeDir()
				return nil, fmt.Errorf("redistest: %w", err)
			}
			auth := "no"
			if opts.TLS.AuthClients {
				auth = "yes"
			}
			args = append(slices.Clone(args), "--tls-port", strconv.Itoa(s.TLSPort),
				"--tls-cert-file", opts.TLS.CertFile, "--tls-key-file", opts.TLS.KeyFile,
				"--tls-ca-cert-file", opts.TLS.CAFile, "--tls-auth-clients", auth)
		}
		if err = s.launch(bin, args); err == nil {
			return s, nil
		}
		if attempt == 2 {
			log, _ := os.ReadFile(s.logFile)
			s.removeDir()
			return nil, fmt.Errorf("%w\nserver log:\n%s", err, log)
		}
	}
}

func (s *Server) launch(bin string, extra []string) error {
	args := []string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--dir", s.Dir, "--save", "", "--appendonly", "no",
		"--enable-debug-command", "local", "--daemonize", "no",
		"--logfile", s.logFile,
	}
	if s.Password != "" {
		// The test server's password on its argv is fine: it is a
		// throw-away secret of a throw-away process.
		args = append(args, "--requirepass", s.Password)
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: starting redis-server: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() { cmd.Wait(); close(s.exited) }()

	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := s.Client()
		if err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("redistest: redis-server on port %d exited at start-up (%v)", s.Port, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("redistest: redis-server on port %d not ready after 15s: %v", s.Port, err)
		}
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// TLSAddr is the server's host:port for TLS.
func (s *Server) TLSAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.TLSPort)) }

// Log is the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logFile)
	return string(b)
}

// Stop kills the server and removes its directory when Start created it.
func (s *Server) Stop() error {
	s.kill()
	return s.removeDir()
}

func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
	s.cmd = nil
}

func (s *Server) removeDir() error {
	if !s.ownDir {
		return nil
	}
	return os.RemoveAll(s.Dir)
}

// Client connects as the default user.
func (s *Server) Client() (*Client, error) { return s.ClientAs("", s.Password) }

// ClientAs connects and authenticates as user (the default user when "")
// with password (no AUTH when both are empty).
func (s *Server) ClientAs(user, password string) (*Client, error) {
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	c := &Client{conn: conn, br: br, rd: resp.NewReader(br)}
	c.rd.MaxBulk = 512 << 20
	if password != "" || user != "" {
		args := []string{"AUTH", password}
		if user != "" {
			args = []string{"AUTH", user, password}
		}
		if _, err := c.Do(args...); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Client is a plain RESP2 connection for tests.
type Client struct {
	conn net.Conn
	br   *bufio.Reader
	rd   *resp.Reader
	buf  []byte
}

// ReplyError is an error reply.
type ReplyError struct{ Msg string }

func (e *ReplyError) Error() string { return "redis: " + e.Msg }

// Do runs one command; an error reply is returned as a *ReplyError.
func (c *Client) Do(args ...string) (resp.Reply, error) {
	rs, err := c.Pipeline([][]string{args})
	if err != nil {
		return resp.Reply{}, err
	}
	if rs[0].IsError() {
		return rs[0], &ReplyError{Msg: rs[0].Str}
	}
	return rs[0], nil
}

// Pipeline sends every command, then reads every reply (error replies
// included, as replies).
func (c *Client) Pipeline(cmds [][]string) ([]resp.Reply, error) {
	if err := c.conn.SetDeadline(time.Now().Add(2 * time.Minute)); err != nil {
		return nil, err
	}
	c.buf = c.buf[:0]
	for _, args := range cmds {
		c.buf = resp.AppendCommand(c.buf, args...)
	}
	if _, err := c.conn.Write(c.buf); err != nil {
		return nil, err
	}
	out := make([]resp.Reply, 0, len(cmds))
	for range cmds {
		r, err := c.rd.ReadReply()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Info returns the fields of INFO section.
func (c *Client) Info(section string) (map[string]string, error) {
	r, err := c.Do("INFO", section)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(r.Str, "\n") {
		if k, v, ok := strings.Cut(strings.TrimRight(l, "\r"), ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// WaitNoChild waits until the server runs no fork child (BGSAVE or
// replication transfer), so that a test's snapshot never piggybacks on the
// previous one.
func (c *Client) WaitNoChild(ctx context.Context) error {
	for {
		info, err := c.Info("persistence")
		if err != nil {
			return err
		}
		if info["rdb_bgsave_in_progress"] == "0" && info["aof_rewrite_in_progress"] == "0" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: a fork child still runs: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// CheckRDB runs redis-check-rdb on path and returns its output.
func CheckRDB(path string) (string, error) {
	bin, err := FindBin("redis-check-rdb")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, path).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("redistest: redis-check-rdb %s: %w\n%s", path, err, out)
	}
	if !strings.Contains(string(out), "RDB looks OK") {
		return string(out), errors.New("redistest: redis-check-rdb did not say the RDB looks OK:\n" + string(out))
	}
	return string(out), nil
}

// RandomPassword is a password with characters that need care in URIs.
func RandomPassword(prefix string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}
