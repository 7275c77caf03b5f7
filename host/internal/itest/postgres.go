package itest

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// Name is the container name; empty means "lbit-pg-<random>".
	Name string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Labels are added to the container (e.g. backup.enabled=true), so the
	// agent's label discovery sees it like a production database container.
	Labels map[string]string
	// Password, if set, makes TCP connections require scram-sha-256 with
	// this password for user postgres. Empty means trust authentication.
	// The Unix socket inside the container always trusts.
	Password string
	// Env, when set, is put on the server's container (docker run -e), the
	// way the official image is configured (POSTGRES_USER, ...); PGPORT
	// defaults to the server's port. Values reach docker by name only,
	// never on its command line.
	Env map[string]string
}

// Postgres is a running PostgreSQL server in a container.
type Postgres struct {
	Name     string // container name
	ID       string // container ID
	Port     int    // TCP port on 127.0.0.1
	Password string // password of user postgres; empty with trust auth
	DataDir  string // host directory mounted at /data; the cluster is /data/pg
}

// pgReadyTimeout bounds the wait for the server to accept connections.
const pgReadyTimeout = 30 * time.Second

// StartPostgres initializes a fresh cluster and starts PostgreSQL in a
// labeled container. The container and its data are removed when the test
// ends. It fails the test on any error.
//
// The server runs as the host's postgres user (it refuses to run as root),
// so the data directory is chowned to that user's uid/gid as looked up on
// this machine. /run/postgresql is a tmpfs owned by the same user so that
// the Unix socket (and tools run with docker exec) work.
func StartPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	RequireDocker(t)
	pg := lookupUser(t, "postgres")

	p := &Postgres{Name: opts.Name, Port: opts.Port, Password: opts.Password}
	if p.Name == "" {
		p.Name = "lbit-pg-" + randomHex(4)
	}
	if p.Port == 0 {
		p.Port = FreePort(t)
	}
	removeStale(t, p.Name)
	p.DataDir = dataDir(t, pg)

	initdb := []string{"initdb", "-D", "/data/pg", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"}
	if p.Password != "" {
		pwfile := filepath.Join(p.DataDir, "pwfile")
		if err := os.WriteFile(pwfile, []byte(p.Password+"\n"), 0o600); err != nil {
			t.Fatalf("itest: %v", err)
		}
		if err := os.Chown(pwfile, pg.uid, pg.gid); err != nil {
			t.Fatalf("itest: %v", err)
		}
		defer os.Remove(pwfile)
		initdb = append(initdb, "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=/data/pwfile")
	} else {
		initdb = append(initdb, "--auth=trust")
	}
	run := []string{"run", "--network", "host", "--user", pg.String(),
		"-v", "/usr:/usr:ro", "-v", p.DataDir + ":/data"}
	Docker(t, slices.Concat(run, []string{"--rm", "--label", LabelKey + "=1", Image}, initdb)...)

	envArgs, dockerEnv := containerEnv(opts.Env, map[string]string{"PGPORT": strconv.Itoa(p.Port)})
	args := slices.Concat(run,
		[]string{"-d", "--name", p.Name,
			"--tmpfs", fmt.Sprintf("/run/postgresql:uid=%d,gid=%d,mode=0755", pg.uid, pg.gid)},
		envArgs,
		labelArgs(t, opts.Labels),
		[]string{Image, "postgres", "-D", "/data/pg", "-p", strconv.Itoa(p.Port),
			"-c", "listen_addresses=127.0.0.1",
			// Test data is disposable: skip the fsyncs.
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"})
	id, err := docker(nil, dockerEnv, args...)
	if err != nil {
		t.Fatalf("itest: starting postgres: %v", err)
	}
	p.ID = strings.TrimSpace(id)
	// By ID: a later container reusing the name must survive this cleanup.
	removeOnCleanup(t, p.ID)

	waitReady(t, p.Name, pgReadyTimeout, "pg_isready", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port))
	return p
}

// ConnString returns a libpq URL for database db over TCP on 127.0.0.1.
func (p *Postgres) ConnString(db string) string {
	u := url.URL{
		Scheme:   "postgresql",
		User:     url.User("postgres"),
		Host:     "127.0.0.1:" + strconv.Itoa(p.Port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	if p.Password != "" {
		u.User = url.UserPassword("postgres", p.Password)
	}
	return u.String()
}

// Psql runs sql (one or more statements; psql meta-commands work too) in
// database db as user postgres, over TCP so the configured authentication
// applies, and returns the trimmed, unaligned, tuples-only output (columns
// separated by "|", rows by newlines). It fails the test on any SQL error.
func (p *Postgres) Psql(t testing.TB, db, sql string) string {
	t.Helper()
	out, err := p.psql(db, sql, p.Password)
	if err != nil {
		t.Fatalf("itest: psql on %s/%s: %v", p.Name, db, err)
	}
	return out
}

// psql is Psql returning the error, with an explicit password.
func (p *Postgres) psql(db, sql, password string) (string, error) {
	args := []string{"exec", "-i"}
	var env []string
	if password != "" {
		// Passed by name: the value stays out of the docker command line.
		args = append(args, "-e", "PGPASSWORD")
		env = []string{"PGPASSWORD=" + password}
	}
	args = append(args, p.Name, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres", "-d", db, "-f", "-")
	out, err := docker(strings.NewReader(sql), env, args...)
	return strings.TrimSpace(out), err
}

// CreateDatabase creates database name.
func (p *Postgres) CreateDatabase(t testing.TB, name string) {
	t.Helper()
	p.Psql(t, "postgres", "CREATE DATABASE "+quoteIdent(name))
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
