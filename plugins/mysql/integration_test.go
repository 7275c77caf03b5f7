package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/mysql/internal/mytest"
	"github.com/labelbackup/label-backup/sdk"
)

// One MariaDB server serves every integration test of the package (the TLS
// test starts its own). It starts on first use (unit tests alone need no
// server) and TestMain stops it. Missing binaries fail the tests that need
// them; nothing is skipped.
var (
	serverOnce sync.Once
	server     *mytest.Server
	serverErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		if err := server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test server:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

func testServer(t *testing.T) *mytest.Server {
	t.Helper()
	serverOnce.Do(func() { server, serverErr = mytest.Start(mytest.Options{}) })
	if serverErr != nil {
		t.Fatalf("integration tests need MariaDB: %v", serverErr)
	}
	return server
}

// newPlugin is the plugin configured with the server's own client tools.
func newPlugin(t *testing.T, s *mytest.Server) *Plugin {
	t.Helper()
	p := New()
	if err := p.Configure(context.Background(), map[string]string{"bin_dir": s.ClientBinDir}); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustSQL(t *testing.T, s *mytest.Server, db, script string) string {
	t.Helper()
	out, err := s.SQL(db, script)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var dbSeq struct {
	sync.Mutex
	n int
}

// uniqueDB creates an empty utf8mb4 database with a name unique to the run,
// dropped when the test ends (the shared server stays small, which keeps
// the all-databases test fast).
func uniqueDB(t *testing.T, s *mytest.Server, prefix string) string {
	t.Helper()
	dbSeq.Lock()
	dbSeq.n++
	name := fmt.Sprintf("%s_%d", prefix, dbSeq.n)
	dbSeq.Unlock()
	if err := s.CreateDB(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := s.SQL("", "DROP DATABASE IF EXISTS "+mytest.QuoteIdent(name)); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	return name
}

func secretsOf(s *mytest.Server) []string {
	return []string{s.Password, url.QueryEscape(s.Password), url.PathEscape(s.Password), strings.TrimSpace(s.Password)}
}

func assertNoSecret(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("text contains a password: %q", text)
		}
	}
}

// seedSQL fills a database with what a dump must carry: utf8mb4 text with
// emoji, binary data with NUL and CR LF, NULLs, an index, a trigger, a
// procedure, a function, a view and an event. The trigger fired for two
// rows: a restore must not fire it again (the dump creates triggers after
// the data).
const seedSQL = `
CREATE TABLE items (
	id INT AUTO_INCREMENT PRIMARY KEY,
	name VARCHAR(100) NOT NULL,
	qty INT,
	price DECIMAL(10,2),
	note TEXT,
	payload BLOB,
	created DATETIME NOT NULL DEFAULT '2024-01-02 03:04:05',
	KEY items_name_idx (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO items (name, qty, price, note, payload)
	SELECT CONCAT('item-', seq), seq % 97, seq * 1.25,
		IF(seq % 10 = 0, NULL, CONCAT('Grüße 世界 🌍 #', seq, ' — naïve café')),
		UNHEX(CONCAT('000D0A', SHA2(seq, 256)))
	FROM seq_1_to_5000;
CREATE TABLE notes (id INT PRIMARY KEY, body TEXT NOT NULL, bin VARBINARY(16)) DEFAULT CHARSET=utf8mb4;
INSERT INTO notes VALUES
	(1, 'Grüße, 世界 🌍🎉 — naïve café', 0x00FF),
	(2, 'tab\there\nnew line\r\nCRLF', NULL),
	(3, 'quote '' and backslash \\ and "double"', 0x5C27);
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item INT, at_name VARCHAR(100)) DEFAULT CHARSET=utf8mb4;
CREATE TRIGGER items_ai AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (item, at_name) VALUES (NEW.id, NEW.name);
INSERT INTO items (name, qty, note) VALUES ('after the trigger', 1, 'ünïcödé'), ('second', 2, NULL);
CREATE PROCEDURE item_count(OUT n INT) SELECT COUNT(*) INTO n FROM items;
CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE VIEW cheap_items AS SELECT id, name FROM items WHERE price < 10;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0;
`

// digests returns, per table, its row count and an md5 of all its rows in
// primary-key order, and the schema objects that must survive.
func digests(t *testing.T, s *mytest.Server, db string) string {
	t.Helper()
	return mustSQL(t, s, db, `
SET SESSION group_concat_max_len = 1073741824;
SELECT 'items', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', id, name, IFNULL(qty, 'N'), IFNULL(price, 'N'), IFNULL(note, 'N'), IFNULL(HEX(payload), 'N'), created) ORDER BY id SEPARATOR '\n')) FROM items;
SELECT 'notes', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', id, body, IFNULL(HEX(bin), 'N')) ORDER BY id SEPARATOR '\n')) FROM notes;
SELECT 'audit', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', id, item, at_name) ORDER BY id SEPARATOR '\n')) FROM audit;
SELECT 'unicode', body FROM notes WHERE id = 1;
SELECT 'charset', TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME;
SELECT 'index', INDEX_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items' GROUP BY INDEX_NAME ORDER BY INDEX_NAME;
SELECT 'trigger', TRIGGER_NAME, EVENT_MANIPULATION, ACTION_TIMING FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY TRIGGER_NAME;
SELECT 'routine', ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_NAME;
SELECT 'view', TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME;
SELECT 'event', EVENT_NAME, STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() ORDER BY EVENT_NAME;
SELECT 'auto_increment', AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items';
CALL item_count(@n);
SELECT 'procedure', @n, double_it(21);
SELECT 'view rows', COUNT(*) FROM cheap_items;
`)
}

// seed creates a database filled with test data.
func seed(t *testing.T, s *mytest.Server, prefix string) string {
	t.Helper()
	db := uniqueDB(t, s, prefix)
	mustSQL(t, s, db, seedSQL)
	return db
}

func TestValidate(t *testing.T) {
	s := testServer(t)
	p := newPlugin(t, s)
	if err := s.CreateDB("validate_db"); err != nil {
		t.Fatal(err)
	}
	const limitedPW = "L1mited-Passw0rd"
	mustSQL(t, s, "", fmt.Sprintf("CREATE USER 'limited'@'127.0.0.1' IDENTIFIED BY '%s'; GRANT SELECT ON validate_db.* TO 'limited'@'127.0.0.1';", limitedPW))
	freePort, err := mytest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const wrongPW = "wr0ng-Passw0rd-XYZ"
	tests := []struct {
		name     string
		plugin   *Plugin
		target   sdk.Target
		wantErr  error // nil: success
		wantText string
	}{
		{name: "ok", target: sdk.Target{Connection: s.URI("validate_db")}},
		{name: "ok with the mariadb scheme", target: sdk.Target{Connection: "mariadb://" + strings.TrimPrefix(s.URI("validate_db"), "mysql://")}},
		{name: "ok without a database (all databases)", target: sdk.Target{Connection: s.URI("")}},
		{name: "ok with database override", target: sdk.Target{Connection: s.URI("nope"), Database: "validate_db"}},
		{name: "ok with ssl-mode=DISABLED", target: sdk.Target{Connection: s.URI("validate_db", "ssl-mode=DISABLED", "connect-timeout=5")}},
		{name: "ok with ssl-mode=PREFERRED (falls back to plain text)", target: sdk.Target{Connection: s.URI("validate_db", "sslmode=preferred")}},
		{name: "ok with tools from PATH", plugin: New(), target: sdk.Target{Connection: s.URI("validate_db")}},
		{name: "ok for a user limited to the database", target: sdk.Target{Connection: s.URIFor("limited", limitedPW, "validate_db")}},
		{name: "wrong password", target: sdk.Target{Connection: s.URIFor(mytest.AppUser, wrongPW, "validate_db")},
			wantErr: sdk.ErrUnauthenticated, wantText: "Access denied for user 'app'"},
		{name: "no password", target: sdk.Target{Connection: fmt.Sprintf("mysql://app@127.0.0.1:%d/validate_db", s.Port)},
			wantErr: sdk.ErrUnauthenticated, wantText: "using password: NO"},
		{name: "unknown user", target: sdk.Target{Connection: s.URIFor("nobody", wrongPW, "validate_db")}, wantErr: sdk.ErrUnauthenticated},
		{name: "closed port", target: sdk.Target{Connection: strings.Replace(s.URI("validate_db"), ":"+strconv.Itoa(s.Port)+"/", ":"+strconv.Itoa(freePort)+"/", 1)},
			wantErr: sdk.ErrUnavailable, wantText: "Can't connect"},
		{name: "unknown host", target: sdk.Target{Connection: "mysql://app:x@db.lbtest.invalid:3306/validate_db?connect-timeout=3"},
			wantErr: sdk.ErrUnavailable, wantText: "Unknown server host"},
		{name: "missing database", target: sdk.Target{Connection: s.URI("no_such_db")},
			wantErr: sdk.ErrNotFound, wantText: "Unknown database 'no_such_db'"},
		{name: "missing database by override", target: sdk.Target{Connection: s.URI("validate_db"), Database: "no_such_db"}, wantErr: sdk.ErrNotFound},
		{name: "database the user may not use", target: sdk.Target{Connection: s.URIFor("limited", limitedPW, "mysql")},
			wantErr: sdk.ErrPermission, wantText: "Access denied for user 'limited'"},
		{name: "bad connection string", target: sdk.Target{Connection: "mysql://app:" + url.PathEscape(s.Password) + "@/x"}, wantErr: sdk.ErrInvalidArgument},
		{name: "unknown query parameter", target: sdk.Target{Connection: s.URI("validate_db", "tls=true")},
			wantErr: sdk.ErrInvalidArgument, wantText: `unknown query parameter "tls"`},
		// The test server has no TLS: these modes must fail, proving the
		// setting reaches the connection.
		{name: "ssl-mode=REQUIRED is honoured", target: sdk.Target{Connection: s.URI("validate_db", "ssl-mode=REQUIRED")},
			wantErr: errAny, wantText: "ssl-mode=REQUIRED, but the server did not encrypt"},
		{name: "ssl-mode=VERIFY_CA is honoured", target: sdk.Target{Connection: s.URI("validate_db", "ssl-mode=VERIFY_CA")},
			wantErr: errAny, wantText: "SSL is required"},
		{name: "ssl-mode=VERIFY_IDENTITY is honoured", target: sdk.Target{Connection: s.URI("", "ssl-mode=VERIFY_IDENTITY")},
			wantErr: errAny, wantText: "SSL is required"},
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
				if !strings.Contains(res.ServerVersion, "MariaDB") || !strings.Contains(res.ServerVersion, ".") {
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
			assertNoSecret(t, err.Error(), append(secretsOf(s), wrongPW, limitedPW)...)
			t.Logf("error: %v", err)
		})
	}
}

var (
	createDatabaseRE = regexp.MustCompile(`(?mi)^\s*CREATE DATABASE`)
	useRE            = regexp.MustCompile("(?mi)^\\s*USE `")
)

func TestDumpRestoreRoundTrip(t *testing.T) {
	s := testServer(t)
	p := newPlugin(t, s)
	src := seed(t, s, "src")
	want := digests(t, s, src)
	for _, w := range []string{"items\t5002\t", "audit\t2\t", "Grüße, 世界 🌍🎉", "trigger\titems_ai", "routine\titem_count\tPROCEDURE",
		"routine\tdouble_it\tFUNCTION", "view\tcheap_items", "event\tnightly", "index\titems_name_idx\tname", "procedure\t5002\t42"} {
		if !strings.Contains(want, w) {
			t.Fatalf("seed data lacks %q:\n%s", w, want)
		}
	}

	// Dump through the plugin; the connection string names another
	// database, Target.Database picks src.
	var dump bytes.Buffer
	start := time.Now()
	res, err := p.Dump(context.Background(), sdk.Target{Connection: s.URI("mysql", "ssl-mode=DISABLED"), Database: src}, &dump)
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	t.Logf("dumped %d bytes in %v", dump.Len(), time.Since(start))
	if res.Format != Format || res.Extension != ".sql" || res.Bytes != int64(dump.Len()) {
		t.Errorf("DumpResult %+v (buffer %d bytes)", res, dump.Len())
	}
	text := dump.String()
	if hdr := parseDumpHeader([]byte(text[:min(len(text), headerPeek)])); !hdr.isDump || hdr.database != src {
		t.Errorf("dump header %+v", hdr)
	}
	if !dumpCompleted([]byte(text[len(text)-100:])) {
		t.Errorf("dump does not end with the marker: %q", text[len(text)-100:])
	}
	// A single-database dump restores under any name.
	if createDatabaseRE.MatchString(text) || useRE.MatchString(text) {
		t.Errorf("single-database dump contains CREATE DATABASE or USE")
	}
	for _, w := range []string{"TRIGGER", "items_ai", "DEFINER=", "PROCEDURE `item_count`", "FUNCTION `double_it`", "EVENT `nightly`", "VIEW `cheap_items`", "0x000D0A"} {
		if !strings.Contains(text, w) {
			t.Errorf("dump lacks %q", w)
		}
	}
	assertNoSecret(t, text, secretsOf(s)...)
	file := filepath.Join(t.TempDir(), "src.sql")
	if err := os.WriteFile(file, dump.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	// By hand, as a person would: mariadb dst < src.sql.
	byHand := uniqueDB(t, s, "byhand")
	in, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := s.Client(context.Background(), byHand)
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariadb %s < dump: %v\n%s", byHand, err, out)
	}
	if got := digests(t, s, byHand); got != want {
		t.Errorf("data restored by hand differs\nsrc:\n%s\ndst:\n%s", want, got)
	}

	// Through the plugin into another fresh database, named by the URI.
	dst := uniqueDB(t, s, "dst")
	dstTarget := sdk.Target{Connection: s.URI(dst)}
	rres, err := p.Restore(context.Background(), dstTarget, Format, bytes.NewReader(dump.Bytes()))
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if len(rres.Warnings) > 0 {
		t.Errorf("restore warnings %q", rres.Warnings)
	}
	if got := digests(t, s, dst); got != want {
		t.Errorf("restored data differs\nsrc:\n%s\ndst:\n%s", want, got)
	}

	// Restoring again replaces what changed (the dump drops and recreates
	// each object); here the target is named by Target.Database.
	mustSQL(t, s, dst, "DELETE FROM notes; INSERT INTO items (name) VALUES ('extra'); DROP VIEW cheap_items; DROP PROCEDURE item_count;")
	if _, err := p.Restore(context.Background(), sdk.Target{Connection: s.URI("mysql"), Database: dst}, "", bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatalf("second Restore: %v", err)
	}
	if got := digests(t, s, dst); got != want {
		t.Errorf("data restored a second time differs\nsrc:\n%s\ndst:\n%s", want, got)
	}
	// The source is untouched.
	if got := digests(t, s, src); got != want {
		t.Errorf("source changed\nbefore:\n%s\nafter:\n%s", want, got)
	}
}

func TestDumpAllDatabases(t *testing.T) {
	s := testServer(t)
	p := newPlugin(t, s)
	a, b := uniqueDB(t, s, "alldb_a"), uniqueDB(t, s, "alldb_b")
	mustSQL(t, s, a, "CREATE TABLE ta (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO ta VALUES (1, 'from a 🅰');")
	mustSQL(t, s, b, "CREATE TABLE tb (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO tb VALUES (2, 'from b 🅱');")
	const check = "SELECT v FROM %s.ta UNION ALL SELECT v FROM %s.tb;"
	want := mustSQL(t, s, "", fmt.Sprintf(check, a, b))

	// No database in the URI (with or without the trailing slash) and none
	// in Target.Database: every database. (Restoring one is slow, as it
	// reloads every test database: only the first is restored.)
	for i, conn := range []string{s.URI(""), strings.TrimSuffix(s.URI(""), "/")} {
		var dump bytes.Buffer
		if _, err := p.Dump(context.Background(), sdk.Target{Connection: conn}, &dump); err != nil {
			t.Fatalf("Dump: %v", err)
		}
		text := dump.String()
		for _, w := range []string{"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `" + a + "`", "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `" + b + "`",
			"USE `" + a + "`;", "USE `" + b + "`;", "USE `mysql`;", "FLUSH PRIVILEGES", "from a 🅰", "from b 🅱"} {
			if !strings.Contains(text, w) {
				t.Errorf("all-databases dump lacks %q", w)
			}
		}
		if hdr := parseDumpHeader(dump.Bytes()[:headerPeek]); !hdr.isDump || !hdr.allDatabases {
			t.Errorf("header %+v", hdr)
		}
		if !dumpCompleted(dump.Bytes()[dump.Len()-100:]) {
			t.Error("all-databases dump lacks the marker")
		}
		assertNoSecret(t, text, s.Password)
		if i > 0 {
			continue
		}

		// It restores each database under its own name.
		mustSQL(t, s, "", fmt.Sprintf("DROP DATABASE %s; DROP DATABASE %s;", a, b))
		res, err := p.Restore(context.Background(), sdk.Target{Connection: conn}, Format, bytes.NewReader(dump.Bytes()))
		if err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if got := mustSQL(t, s, "", fmt.Sprintf(check, a, b)); got != want {
			t.Errorf("after restore: %q, want %q", got, want)
		}
		if len(res.Warnings) != 0 {
			t.Errorf("warnings %q", res.Warnings)
		}
	}
}

func TestDumpFailures(t *testing.T) {
	s := testServer(t)
	p := newPlugin(t, s)
	freePort, err := mytest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		target   sdk.Target
		wantErr  error
		wantText string
	}{
		{"missing database", sdk.Target{Connection: s.URI("no_such_db")}, sdk.ErrNotFound, "Unknown database"},
		{"missing database by override", sdk.Target{Connection: s.URI("mysql"), Database: "no_such_db"}, sdk.ErrNotFound, "Unknown database"},
		{"unreachable", sdk.Target{Connection: fmt.Sprintf("mysql://app:x@127.0.0.1:%d/x", freePort)}, sdk.ErrUnavailable, "Can't connect"},
		{"wrong password", sdk.Target{Connection: s.URIFor(mytest.AppUser, "Wr0ngPassw0rd", "mysql")}, sdk.ErrUnauthenticated, "Access denied"},
		{"wrong password, all databases", sdk.Target{Connection: s.URIFor(mytest.AppUser, "Wr0ngPassw0rd", "")}, sdk.ErrUnauthenticated, "Access denied"},
		{"ssl-mode=REQUIRED is honoured", sdk.Target{Connection: s.URI("mysql", "ssl-mode=REQUIRED")}, errAny, "ssl-mode=REQUIRED, but the server did not encrypt"},
		{"ssl-mode=REQUIRED is honoured, all databases", sdk.Target{Connection: s.URI("", "ssl-mode=REQUIRED")}, errAny, "ssl-mode=REQUIRED"},
		{"ssl-mode=VERIFY_CA is honoured", sdk.Target{Connection: s.URI("mysql", "ssl-mode=VERIFY_CA")}, errAny, "SSL is required"},
		{"bad connection string", sdk.Target{Connection: s.URI("mysql", "ssl-mode=maybe")}, sdk.ErrInvalidArgument, "ssl-mode"},
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
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q lacks %q", err, tc.wantText)
			}
			assertNoSecret(t, err.Error(), append(secretsOf(s), "Wr0ngPassw0rd")...)
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
	s := testServer(t)
	p := newPlugin(t, s)
	src := seed(t, s, "wfail")
	for _, limit := range []int{0, 1000} {
		done := make(chan error, 1)
		go func() {
			_, err := p.Dump(context.Background(), sdk.Target{Connection: s.URI(src)}, &failingWriter{limit: limit})
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, errWriter) {
				t.Errorf("limit %d: Dump error %v does not wrap the writer's error", limit, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("limit %d: Dump did not return after its writer failed", limit)
		}
	}
}

func TestDumpCancel(t *testing.T) {
	s := testServer(t)
	p := newPlugin(t, s)
	db := seed(t, s, "cancel")

	// Hold a write lock on items so that mariadb-dump blocks reading it:
	// the dump is then certainly running when the context is cancelled.
	lockCtx, stopLock := context.WithCancel(context.Background())
	defer stopLock()
	locker := s.Client(lockCtx, db, "--batch", "--execute=LOCK TABLES items WRITE; SELECT SLEEP(120), 'lbtest-locker';")
	if err := locker.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		s.SQL("", "SELECT CONCAT('KILL ', ID, ';') FROM information_schema.PROCESSLIST WHERE INFO LIKE '%lbtest-locker%' AND INFO NOT LIKE '%PROCESSLIST%' INTO @k; EXECUTE IMMEDIATE IFNULL(@k, 'DO 0');")
		stopLock()
		locker.Wait()
	}()
	waitFor(t, s, "the lock", "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%lbtest-locker%' AND INFO NOT LIKE '%PROCESSLIST%'")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var buf bytes.Buffer
	go func() {
		_, err := p.Dump(ctx, sdk.Target{Connection: s.URI(db)}, &buf)
		done <- err
	}()
	waitFor(t, s, "mariadb-dump to wait for the lock", fmt.Sprintf(
		"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app' AND DB = '%s' AND STATE LIKE 'Waiting for table metadata lock'", db))
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

// waitFor polls query until it returns a non-zero count.
func waitFor(t *testing.T, s *mytest.Server, what, query string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := s.SQL("", query)
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

func TestRestoreFailures(t *testing.T) {
	s := testServer(t)
	p := newPlugin(t, s)
	src := seed(t, s, "rsrc")
	var dump bytes.Buffer
	if _, err := p.Dump(context.Background(), sdk.Target{Connection: s.URI(src)}, &dump); err != nil {
		t.Fatal(err)
	}
	full := dump.Bytes()
	// Cut at a line boundary, so that every statement the client sees is
	// complete: only the missing marker tells.
	cut := bytes.LastIndex(full[:len(full)/2], []byte(";\n")) + 2
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
			target: func(db string) sdk.Target { return sdk.Target{Connection: s.URI(db)} },
			input:  func() io.Reader { return &brokenReader{r: bytes.NewReader(full), err: errUpload} },
			// The client may have applied everything; the broken stream
			// must still fail the restore.
			wantErr: sdk.ErrIntegrity, wantText: "trailer mismatch",
		},
		{
			name:    "half a dump, then a broken stream",
			target:  func(db string) sdk.Target { return sdk.Target{Connection: s.URI(db)} },
			input:   func() io.Reader { return &brokenReader{r: bytes.NewReader(full[:len(full)/2]), err: errUpload} },
			wantErr: sdk.ErrIntegrity, wantText: "trailer mismatch",
		},
		{
			name:    "dump truncated at a statement boundary",
			target:  func(db string) sdk.Target { return sdk.Target{Connection: s.URI(db)} },
			input:   func() io.Reader { return bytes.NewReader(full[:cut]) },
			wantErr: sdk.ErrIntegrity, wantText: "truncated",
		},
		{
			name:     "dump cut inside a statement",
			target:   func(db string) sdk.Target { return sdk.Target{Connection: s.URI(db)} },
			input:    func() io.Reader { return bytes.NewReader(full[:len(full)/2+7]) },
			wantErr:  errAny,
			wantText: "ERROR",
		},
		{
			name:     "empty input",
			target:   func(db string) sdk.Target { return sdk.Target{Connection: s.URI(db)} },
			input:    func() io.Reader { return strings.NewReader("") },
			wantErr:  sdk.ErrInvalidArgument,
			wantText: "empty",
		},
		{
			name:   "SQL error",
			target: func(db string) sdk.Target { return sdk.Target{Connection: s.URI(db)} },
			input: func() io.Reader {
				return strings.NewReader("CREATE TABLE ok1 (id INT);\nTHIS IS NOT SQL;\nCREATE TABLE ok2 (id INT);\n")
			},
			wantErr:  errAny,
			wantText: "ERROR 1064",
		},
		{
			name:     "single-database dump without a database to restore into",
			target:   func(string) sdk.Target { return sdk.Target{Connection: s.URI("")} },
			input:    func() io.Reader { return bytes.NewReader(full) },
			wantErr:  sdk.ErrInvalidArgument,
			wantText: "name the database to restore into",
		},
		{
			name:     "missing database",
			target:   func(string) sdk.Target { return sdk.Target{Connection: s.URI("no_such_db")} },
			input:    func() io.Reader { return bytes.NewReader(full) },
			wantErr:  sdk.ErrNotFound,
			wantText: "Unknown database",
		},
		{
			name: "wrong password",
			target: func(db string) sdk.Target {
				return sdk.Target{Connection: s.URIFor(mytest.AppUser, "Wr0ngPassw0rd", db)}
			},
			input:    func() io.Reader { return bytes.NewReader(full) },
			wantErr:  sdk.ErrUnauthenticated,
			wantText: "Access denied",
		},
		{
			name:     "ssl-mode=REQUIRED is honoured",
			target:   func(db string) sdk.Target { return sdk.Target{Connection: s.URI(db, "ssl-mode=REQUIRED")} },
			input:    func() io.Reader { return bytes.NewReader(full) },
			wantErr:  errAny,
			wantText: "ssl-mode=REQUIRED",
		},
		{
			name:    "unknown format",
			target:  func(db string) sdk.Target { return sdk.Target{Connection: s.URI(db)} },
			format:  "pg_dump-custom",
			input:   func() io.Reader { return bytes.NewReader(full) },
			wantErr: sdk.ErrInvalidArgument,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := uniqueDB(t, s, "rdst")
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
			assertNoSecret(t, err.Error(), append(secretsOf(s), "Wr0ngPassw0rd")...)
			t.Logf("error: %v", err)
		})
	}
}

func TestRestoreCancel(t *testing.T) {
	s := testServer(t)
	p := newPlugin(t, s)
	db := uniqueDB(t, s, "rcancel")
	// A reader that never ends: the client waits on stdin until cancelled.
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("-- MariaDB dump 10.19\n--\n-- Host: 127.0.0.1    Database: x\n" + strings.Repeat("SELECT 1;\n", 2000)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Restore(ctx, sdk.Target{Connection: s.URI(db)}, "", pr)
		done <- err
	}()
	waitFor(t, s, "the restore's session", fmt.Sprintf("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app' AND DB = '%s'", db))
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
