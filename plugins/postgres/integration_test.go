package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/postgres/internal/pgtest"
	"github.com/labelbackup/label-backup/sdk"
)

// One PostgreSQL cluster serves every integration test of the package. It
// starts on first use (unit tests alone need no server) and TestMain stops
// it. Missing binaries fail the tests that need them; nothing is skipped.
var (
	clusterOnce sync.Once
	cluster     *pgtest.Cluster
	clusterErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test cluster:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

func testCluster(t *testing.T) *pgtest.Cluster {
	t.Helper()
	clusterOnce.Do(func() { cluster, clusterErr = pgtest.Start() })
	if clusterErr != nil {
		t.Fatalf("integration tests need PostgreSQL: %v", clusterErr)
	}
	return cluster
}

// newPlugin is the plugin configured with the cluster's own tools.
func newPlugin(t *testing.T, c *pgtest.Cluster) *Plugin {
	t.Helper()
	p := New()
	if err := p.Configure(context.Background(), map[string]string{"bin_dir": c.BinDir}); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustSQL(t *testing.T, c *pgtest.Cluster, db, script string) string {
	t.Helper()
	out, err := c.SQL(db, script)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// uniqueDB creates an empty database with a name unique to the test.
func uniqueDB(t *testing.T, c *pgtest.Cluster, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	if err := c.CreateDB(name); err != nil {
		t.Fatal(err)
	}
	return name
}

func assertNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error text contains a password: %q", err)
		}
	}
}

func TestValidate(t *testing.T) {
	c := testCluster(t)
	p := newPlugin(t, c)
	if err := c.CreateDB("validate_db"); err != nil {
		t.Fatal(err)
	}
	freePort, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const wrongPW = "wr0ng-Passw0rd-XYZ"
	wrongURI := fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/validate_db", wrongPW, c.Port)
	tests := []struct {
		name     string
		plugin   *Plugin
		target   sdk.Target
		wantErr  error // nil: success
		wantText string
	}{
		{name: "ok", target: sdk.Target{Connection: c.URI("validate_db")}},
		{name: "ok with the short scheme", target: sdk.Target{Connection: "postgres://" + strings.TrimPrefix(c.URI("validate_db"), "postgresql://")}},
		{name: "ok with query options", target: sdk.Target{Connection: c.URI("validate_db", "sslmode=disable", "application_name=lbtest", "connect_timeout=5")}},
		{name: "ok with password in the query", target: sdk.Target{Connection: fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/validate_db?password=%s", c.Port, escape(c.Password))}},
		{name: "ok with database override", target: sdk.Target{Connection: c.URI("nope"), Database: "validate_db"}},
		{name: "ok with tools from PATH", plugin: New(), target: sdk.Target{Connection: c.URI("validate_db")}},
		{name: "wrong password", target: sdk.Target{Connection: wrongURI}, wantErr: sdk.ErrUnauthenticated, wantText: "password authentication failed"},
		{name: "no password", target: sdk.Target{Connection: fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/validate_db", c.Port)}, wantErr: sdk.ErrUnauthenticated, wantText: "no password supplied"},
		{name: "unknown user", target: sdk.Target{Connection: fmt.Sprintf("postgresql://nobody:%s@127.0.0.1:%d/validate_db", escape(wrongPW), c.Port)}, wantErr: sdk.ErrUnauthenticated},
		{name: "unreachable port", target: sdk.Target{Connection: fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/validate_db", escape(c.Password), freePort)}, wantErr: sdk.ErrUnavailable, wantText: "Connection refused"},
		{name: "missing database", target: sdk.Target{Connection: c.URI("no_such_db")}, wantErr: sdk.ErrNotFound, wantText: `database "no_such_db" does not exist`},
		{name: "missing database by override", target: sdk.Target{Connection: c.URI("validate_db"), Database: "no_such_db"}, wantErr: sdk.ErrNotFound},
		{name: "bad connection string", target: sdk.Target{Connection: "postgresql://postgres:" + escape(c.Password) + "@/x"}, wantErr: sdk.ErrInvalidArgument},
		// The test server has no SSL: sslmode=require must make the
		// connection fail, proving query options reach libpq.
		{name: "sslmode=require is honoured", target: sdk.Target{Connection: c.URI("validate_db", "sslmode=require")}, wantErr: errAny, wantText: "SSL"},
		{name: "target_session_attrs is honoured", target: sdk.Target{Connection: c.URI("validate_db", "target_session_attrs=standby")}, wantErr: errAny, wantText: "standby"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl := p
			if tc.plugin != nil {
				pl = tc.plugin
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := pl.Validate(ctx, tc.target)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if !strings.HasPrefix(res.ServerVersion, "1") || !strings.Contains(res.ServerVersion, ".") {
					t.Errorf("ServerVersion %q", res.ServerVersion)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded (version %q), want an error", res.ServerVersion)
			}
			if tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %q does not wrap %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q lacks %q", err, tc.wantText)
			}
			assertNoSecret(t, err, c.Password, escape(c.Password), wrongPW)
			t.Logf("error: %v", err)
		})
	}
}

// errAny marks a case that must fail, with any error.
var errAny = errors.New("any error")

// tableDigests returns, per table, its row count and an md5 of all its rows
// in primary-key order.
func tableDigests(t *testing.T, c *pgtest.Cluster, db string) string {
	t.Helper()
	return mustSQL(t, c, db, `
SELECT 'items', count(*), md5(string_agg(i::text, '|' ORDER BY id)) FROM items i;
SELECT 'notes', count(*), md5(string_agg(n::text, '|' ORDER BY id)) FROM notes n;
SELECT 'seq', last_value, is_called FROM ticket_seq;
SELECT 'idx', indexname FROM pg_indexes WHERE tablename = 'items' ORDER BY indexname;
SELECT 'unicode', body FROM notes WHERE id = 1000;
`)
}

const seedSQL = `
CREATE SEQUENCE ticket_seq START 1000;
CREATE TABLE items (
	id bigserial PRIMARY KEY,
	name text NOT NULL,
	qty int,
	price numeric(10,2),
	created timestamptz NOT NULL DEFAULT '2024-01-02 03:04:05+00',
	payload bytea
);
INSERT INTO items (name, qty, price, payload)
	SELECT 'item-' || g, g % 97, (g * 1.25)::numeric(10,2), sha256(g::text::bytea) FROM generate_series(1, 5000) g;
CREATE INDEX items_name_idx ON items (name);
CREATE TABLE notes (id int PRIMARY KEY DEFAULT nextval('ticket_seq'), body text NOT NULL);
INSERT INTO notes (body) VALUES ('Grüße, 世界 🌍 — naïve café'), (E'tab\there\nnew line'), ('quote '' and backslash \');
`

// seed creates a database filled with test data.
func seed(t *testing.T, c *pgtest.Cluster, prefix string) string {
	t.Helper()
	db := uniqueDB(t, c, prefix)
	mustSQL(t, c, db, seedSQL)
	return db
}

func TestDumpRestoreRoundTrip(t *testing.T) {
	c := testCluster(t)
	p := newPlugin(t, c)
	src := seed(t, c, "src")
	want := tableDigests(t, c, src)
	if !strings.Contains(want, "items|5000|") || !strings.Contains(want, "Grüße, 世界 🌍") {
		t.Fatalf("seed data wrong:\n%s", want)
	}

	// Dump through the plugin; the connection string names another
	// database, Target.Database picks src.
	var dump bytes.Buffer
	start := time.Now()
	res, err := p.Dump(context.Background(), sdk.Target{Connection: c.URI("postgres", "sslmode=disable&application_name=lbtest"), Database: src}, &dump)
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	t.Logf("dumped %d bytes in %v", dump.Len(), time.Since(start))
	if res.Format != FormatCustom || res.Extension != ".dump" || res.Bytes != int64(dump.Len()) {
		t.Errorf("DumpResult %+v (buffer %d bytes)", res, dump.Len())
	}
	if !bytes.HasPrefix(dump.Bytes(), []byte("PGDMP")) {
		t.Fatalf("dump does not start with the custom-format magic: %q", dump.Bytes()[:min(16, dump.Len())])
	}
	file := filepath.Join(t.TempDir(), "src.dump")
	if err := os.WriteFile(file, dump.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	// Restore through the plugin into a fresh, empty database.
	dst := uniqueDB(t, c, "dst")
	dstTarget := sdk.Target{Connection: c.URI(dst)}
	if _, err := p.Restore(context.Background(), dstTarget, FormatCustom, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := tableDigests(t, c, dst); got != want {
		t.Errorf("restored data differs\nsrc:\n%s\ndst:\n%s", want, got)
	}

	// Restoring again without clean fails (objects exist, --exit-on-error);
	// with clean=true it replaces them.
	if _, err := p.Restore(context.Background(), dstTarget, "", bytes.NewReader(dump.Bytes())); err == nil {
		t.Errorf("second Restore without clean succeeded")
	} else if !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second Restore without clean: %v", err)
	}
	mustSQL(t, c, dst, "DELETE FROM notes; INSERT INTO items (name) VALUES ('extra');")
	dstTarget.Options = map[string]string{"clean": "true", "no_owner": "true"}
	if _, err := p.Restore(context.Background(), dstTarget, "", bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatalf("Restore with clean=true: %v", err)
	}
	if got := tableDigests(t, c, dst); got != want {
		t.Errorf("data restored with clean differs\nsrc:\n%s\ndst:\n%s", want, got)
	}

	// The file is a valid custom-format archive for a plain pg_restore.
	byHand := uniqueDB(t, c, "byhand")
	cmd := exec.Command(c.Tool("pg_restore"), "--exit-on-error", "-d", byHand, file)
	cmd.Env = c.ClientEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_restore -d by hand: %v\n%s", err, out)
	}
	if got := tableDigests(t, c, byHand); got != want {
		t.Errorf("data restored by hand differs\nsrc:\n%s\ndst:\n%s", want, got)
	}
	cmd = exec.Command(c.Tool("pg_restore"), "--list", file)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Format: CUSTOM") || !strings.Contains(string(out), "Compression: 0") {
		t.Errorf("pg_restore --list: %v\n%s", err, out)
	}
}

func TestDumpFailures(t *testing.T) {
	c := testCluster(t)
	p := newPlugin(t, c)
	freePort, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		target  sdk.Target
		wantErr error
	}{
		{"missing database", sdk.Target{Connection: c.URI("no_such_db")}, sdk.ErrNotFound},
		{"missing database by override", sdk.Target{Connection: c.URI("postgres"), Database: "no_such_db"}, sdk.ErrNotFound},
		{"unreachable", sdk.Target{Connection: fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/x", freePort)}, sdk.ErrUnavailable},
		{"wrong password", sdk.Target{Connection: fmt.Sprintf("postgresql://postgres:Wr0ngPassw0rd@127.0.0.1:%d/postgres", c.Port)}, sdk.ErrUnauthenticated},
		{"sslmode=require is honoured", sdk.Target{Connection: c.URI("postgres", "sslmode=require")}, errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := p.Dump(context.Background(), tc.target, &buf)
			if err == nil {
				t.Fatalf("Dump succeeded with %d bytes", buf.Len())
			}
			if tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %q does not wrap %v", err, tc.wantErr)
			}
			assertNoSecret(t, err, c.Password, escape(c.Password), "Wr0ngPassw0rd")
			t.Logf("error: %v", err)
		})
	}
}

// failingWriter fails after accepting some bytes, like a full disk.
type failingWriter struct{ n, limit int }

var errWriter = errors.New("disk full (test)")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		return 0, errWriter
	}
	w.n += len(p)
	return len(p), nil
}

func TestDumpWriterFails(t *testing.T) {
	c := testCluster(t)
	p := newPlugin(t, c)
	src := seed(t, c, "wfail")
	done := make(chan error, 1)
	go func() {
		_, err := p.Dump(context.Background(), sdk.Target{Connection: c.URI(src)}, &failingWriter{limit: 1000})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errWriter) {
			t.Errorf("Dump error %v does not wrap the writer's error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Dump did not return after its writer failed")
	}
}

func TestDumpCancel(t *testing.T) {
	c := testCluster(t)
	p := newPlugin(t, c)
	db := seed(t, c, "cancel")

	// Hold an exclusive lock so that pg_dump blocks on LOCK TABLE: the dump
	// is then certainly running when the context is cancelled.
	lockCtx, stopLock := context.WithCancel(context.Background())
	defer stopLock()
	locker := exec.CommandContext(lockCtx, c.Tool("psql"), "-X", "-q", "-d", db,
		"-c", "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;")
	locker.Env = c.ClientEnv()
	if err := locker.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopLock()
		locker.Wait()
		c.SQL("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+db+"' AND pid <> pg_backend_pid();")
	}()
	waitFor(t, c, db, "the lock", `SELECT count(*) FROM pg_locks l JOIN pg_class r ON r.oid = l.relation
		WHERE r.relname = 'items' AND l.mode = 'AccessExclusiveLock' AND l.granted
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var buf bytes.Buffer
	go func() {
		_, err := p.Dump(ctx, sdk.Target{Connection: c.URI(db)}, &buf)
		done <- err
	}()
	waitFor(t, c, "postgres", "pg_dump to wait for the lock", fmt.Sprintf(
		`SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND application_name = 'pg_dump' AND wait_event_type = 'Lock'`, db))
	cancel()
	cancelled := time.Now()
	select {
	case err := <-done:
		t.Logf("Dump returned %v after cancel: %v", time.Since(cancelled), err)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dump error %v does not wrap context.Canceled", err)
		}
		if d := time.Since(cancelled); d > 3*time.Second {
			t.Errorf("Dump took %v to stop after cancel", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Dump did not return after cancel")
	}
}

// waitFor polls query in db until it returns a non-zero count.
func waitFor(t *testing.T, c *pgtest.Cluster, db, what, query string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := c.SQL(db, query)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(out); n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// brokenReader yields data, then fails instead of returning io.EOF, like
// an upload whose trailer did not match.
type brokenReader struct {
	r   io.Reader
	err error
}

func (b *brokenReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, b.err
	}
	return n, err
}

func TestRestoreFailures(t *testing.T) {
	c := testCluster(t)
	p := newPlugin(t, c)
	src := seed(t, c, "rsrc")
	var dump bytes.Buffer
	if _, err := p.Dump(context.Background(), sdk.Target{Connection: c.URI(src)}, &dump); err != nil {
		t.Fatal(err)
	}
	errUpload := fmt.Errorf("trailer mismatch (test): %w", sdk.ErrIntegrity)
	tests := []struct {
		name     string
		target   func(db string) sdk.Target
		format   string
		input    func() io.Reader
		wantErr  error
		wantText string
	}{
		{
			name:   "whole dump, then a broken stream",
			target: func(db string) sdk.Target { return sdk.Target{Connection: c.URI(db)} },
			input:  func() io.Reader { return &brokenReader{r: bytes.NewReader(dump.Bytes()), err: errUpload} },
			// pg_restore may have succeeded; the broken stream must
			// still fail the restore.
			wantErr: sdk.ErrIntegrity,
		},
		{
			name:   "half a dump, then a broken stream",
			target: func(db string) sdk.Target { return sdk.Target{Connection: c.URI(db)} },
			input: func() io.Reader {
				return &brokenReader{r: bytes.NewReader(dump.Bytes()[:dump.Len()/2]), err: errUpload}
			},
			wantErr: sdk.ErrIntegrity,
		},
		{
			name:     "truncated dump",
			target:   func(db string) sdk.Target { return sdk.Target{Connection: c.URI(db)} },
			input:    func() io.Reader { return bytes.NewReader(dump.Bytes()[:dump.Len()/2]) },
			wantErr:  errAny,
			wantText: "pg_restore",
		},
		{
			name:     "empty input",
			target:   func(db string) sdk.Target { return sdk.Target{Connection: c.URI(db)} },
			input:    func() io.Reader { return strings.NewReader("") },
			wantErr:  errAny,
			wantText: "pg_restore",
		},
		{
			name:   "missing database",
			target: func(string) sdk.Target { return sdk.Target{Connection: c.URI("no_such_db")} },
			input:  func() io.Reader { return bytes.NewReader(dump.Bytes()) },
			// pg_restore reads the archive's header before connecting.
			wantErr: sdk.ErrNotFound,
		},
		{
			name: "wrong password",
			target: func(db string) sdk.Target {
				return sdk.Target{Connection: fmt.Sprintf("postgresql://postgres:Wr0ngPassw0rd@127.0.0.1:%d/%s", c.Port, db)}
			},
			input:    func() io.Reader { return bytes.NewReader(dump.Bytes()) },
			wantErr:  sdk.ErrUnauthenticated,
			wantText: "password authentication failed",
		},
		{
			name: "options parameter is honoured (read-only transactions)",
			target: func(db string) sdk.Target {
				return sdk.Target{Connection: c.URI(db, "options=-c%20default_transaction_read_only%3Don")}
			},
			input:    func() io.Reader { return bytes.NewReader(dump.Bytes()) },
			wantErr:  errAny,
			wantText: "read-only transaction",
		},
		{
			name:    "unknown format",
			target:  func(db string) sdk.Target { return sdk.Target{Connection: c.URI(db)} },
			format:  "pg_dump-plain",
			input:   func() io.Reader { return bytes.NewReader(dump.Bytes()) },
			wantErr: sdk.ErrInvalidArgument,
		},
		{
			name: "bad option value",
			target: func(db string) sdk.Target {
				return sdk.Target{Connection: c.URI(db), Options: map[string]string{"clean": "maybe"}}
			},
			input:   func() io.Reader { return bytes.NewReader(dump.Bytes()) },
			wantErr: sdk.ErrInvalidArgument,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := uniqueDB(t, c, "rdst")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := p.Restore(ctx, tc.target(db), tc.format, tc.input())
			if err == nil {
				t.Fatal("Restore succeeded")
			}
			if tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %q does not wrap %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q lacks %q", err, tc.wantText)
			}
			assertNoSecret(t, err, c.Password, escape(c.Password), "Wr0ngPassw0rd")
			t.Logf("error: %v", err)
		})
	}
}

func TestRestoreCancel(t *testing.T) {
	c := testCluster(t)
	p := newPlugin(t, c)
	db := uniqueDB(t, c, "rcancel")
	// A reader that never ends: pg_restore waits on stdin until cancelled.
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("PGDMP"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Restore(ctx, sdk.Target{Connection: c.URI(db)}, "", pr)
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	// The stdin copy blocks in Read until the reader ends: a real upload
	// ends with its context, like this pipe.
	time.AfterFunc(100*time.Millisecond, func() { pw.CloseWithError(context.Canceled) })
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Restore error %v does not wrap context.Canceled", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Restore did not return after cancel")
	}
}
