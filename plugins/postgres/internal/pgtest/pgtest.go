// Package pgtest runs throw-away PostgreSQL clusters for tests: initdb in a
// temporary directory, password (scram-sha-256) authentication over TCP on
// 127.0.0.1 and trust on a private Unix socket, started with pg_ctl.
//
// PostgreSQL refuses to run as root: when the tests run as root, the server
// tools run as the "postgres" user (runuser) and the cluster's directory is
// handed to that user.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// installHint is what to do when the PostgreSQL binaries are missing.
const installHint = "run scripts/install-deps.sh (or set LB_PG_BINDIR to the directory holding initdb, pg_ctl, psql, pg_dump and pg_restore)"

// required are the binaries a cluster and the tests need.
var required = []string{"initdb", "pg_ctl", "postgres", "psql", "pg_dump", "pg_restore"}

// Cluster is a running PostgreSQL server.
type Cluster struct {
	// BinDir holds the server and client binaries.
	BinDir string
	// Dir is the cluster's temporary directory; it also holds the socket.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// User is the superuser's name ("postgres").
	User string
	// Password is the superuser's password for TCP connections.
	Password string

	runAs   *user.User // nil: run server tools as the current user
	dataDir string
	logFile string
}

// FindBinDir finds the PostgreSQL binaries: $LB_PG_BINDIR, else the newest
// /usr/lib/postgresql/<version>/bin, else the directory of initdb in PATH.
func FindBinDir() (string, error) {
	var candidates []string
	if d := os.Getenv("LB_PG_BINDIR"); d != "" {
		candidates = append(candidates, d)
	} else {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		slices.SortFunc(matches, func(a, b string) int {
			return majorOf(b) - majorOf(a) // newest first
		})
		candidates = append(candidates, matches...)
		if p, err := exec.LookPath("initdb"); err == nil {
			candidates = append(candidates, filepath.Dir(p))
		}
	}
	for _, d := range candidates {
		ok := true
		for _, b := range required {
			if fi, err := os.Stat(filepath.Join(d, b)); err != nil || fi.Mode().Perm()&0o111 == 0 {
				ok = false
				break
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", fmt.Errorf("pgtest: PostgreSQL binaries (%s) not found: %s", strings.Join(required, ", "), installHint)
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
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

// New starts a cluster that is stopped and removed when t ends.
func New(t testing.TB) *Cluster {
	t.Helper()
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// Start initializes and starts a cluster. The caller must Stop it.
func Start() (*Cluster, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{BinDir: bin, User: "postgres", Password: "pg-Test:p@ss/w%rd+" + randomHex(8)}
	if os.Geteuid() == 0 {
		if c.runAs, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs a postgres user (%v): %s", err, installHint)
		}
	}
	if c.Dir, err = os.MkdirTemp("", "lbpgtest-"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			c.remove()
		}
	}()
	c.dataDir = filepath.Join(c.Dir, "data")
	c.logFile = filepath.Join(c.Dir, "server.log")
	if err := os.Chmod(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := c.chown(c.Dir); err != nil {
		return nil, err
	}

	pwfile := filepath.Join(c.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.Password+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := c.chown(pwfile); err != nil {
		return nil, err
	}
	_, err = c.runServerTool(60*time.Second, "initdb", "-D", c.dataDir, "-U", c.User, "-E", "UTF8",
		"--no-locale", "--no-sync", "--auth-host=scram-sha-256", "--auth-local=trust", "--pwfile="+pwfile)
	os.Remove(pwfile)
	if err != nil {
		return nil, fmt.Errorf("%w (the parents of %s must be traversable by the postgres user)", err, c.Dir)
	}

	// The free port may be taken between FreePort and the server's bind:
	// try a few.
	for attempt := 0; ; attempt++ {
		if c.Port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", c.Port, c.Dir)
		_, err = c.runServerTool(60*time.Second, "pg_ctl", "-D", c.dataDir, "-l", c.logFile, "-w", "-t", "30", "-o", opts, "start")
		if err == nil {
			break
		}
		if attempt == 2 {
			log, _ := os.ReadFile(c.logFile)
			return nil, fmt.Errorf("%w\nserver log:\n%s", err, log)
		}
	}
	ok = true
	return c, nil
}

// Stop stops the server (immediate shutdown) and removes its directory.
func (c *Cluster) Stop() error {
	_, err := c.runServerTool(60*time.Second, "pg_ctl", "-D", c.dataDir, "-m", "immediate", "-w", "stop")
	if rerr := c.remove(); err == nil {
		err = rerr
	}
	return err
}

func (c *Cluster) remove() error {
	if c.Dir == "" {
		return nil
	}
	return os.RemoveAll(c.Dir)
}

func (c *Cluster) chown(path string) error {
	if c.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.runAs.Uid)
	gid, _ := strconv.Atoi(c.runAs.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// runServerTool runs one of the server's tools as the postgres user.
func (c *Cluster) runServerTool(timeout time.Duration, tool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	path := filepath.Join(c.BinDir, tool)
	var cmd *exec.Cmd
	if c.runAs != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs.Username, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.Dir
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("pgtest: %s %s: %w\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// URI is a postgresql:// connection string for db over TCP with the
// superuser's password (percent-encoded) and extra query parameters.
func (c *Cluster) URI(db string, query ...string) string {
	u := url.URL{
		Scheme: "postgresql",
		User:   url.UserPassword(c.User, c.Password),
		Host:   net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)),
		Path:   "/" + db,
	}
	s := u.String()
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// Tool is the path of one of the cluster's binaries.
func (c *Cluster) Tool(name string) string { return filepath.Join(c.BinDir, name) }

// ClientEnv is the environment for client tools connecting through the
// cluster's Unix socket as the superuser (trust authentication).
func (c *Cluster) ClientEnv() []string {
	return append(cleanEnv(), "PGHOST="+c.Dir, "PGPORT="+strconv.Itoa(c.Port), "PGUSER="+c.User)
}

// SQL runs a script in db through psql over the Unix socket and returns its
// unaligned, tuples-only output. Statements run one by one, stopping at the
// first error.
func (c *Cluster) SQL(db, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Tool("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", "-")
	cmd.Env = c.ClientEnv()
	cmd.Stdin = strings.NewReader(script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("pgtest: psql in %s: %w: %s", db, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// CreateDB creates an empty database (from template0).
func (c *Cluster) CreateDB(name string) error {
	_, err := c.SQL("postgres", fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8';", quoteIdent(name)))
	return err
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func cleanEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	if env[0] == "PATH=" {
		env[0] = "PATH=/usr/local/bin:/usr/bin:/bin"
	}
	return env
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("pgtest: no randomness"))
	}
	return hex.EncodeToString(b)
}
