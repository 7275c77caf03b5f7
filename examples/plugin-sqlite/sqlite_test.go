package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

func conn(path string) sdk.Target { return sdk.Target{Connection: "sqlite://" + path} }

func open(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", fileURI(path, "mode=rwc"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// seed creates a database of several MiB (the conformance kit's
// cancellation case needs a dump longer than one 1 MiB chunk) in WAL mode,
// the mode applications usually use.
func seed(t *testing.T, path string, rows int) *sql.DB {
	t.Helper()
	db := open(t, path)
	mustExec(t, db, "PRAGMA journal_mode=WAL")
	mustExec(t, db, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, blob BLOB)")
	mustExec(t, db, "CREATE INDEX items_name ON items(name)")
	mustExec(t, db, "CREATE TABLE notes (k TEXT PRIMARY KEY, v TEXT)")
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		b := make([]byte, 4096)
		rand.Read(b)
		if _, err := tx.Exec("INSERT INTO items (name, blob) VALUES (?, ?)", hex.EncodeToString(b[:8]), b); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			tx.Exec("INSERT INTO notes VALUES (?, ?)", hex.EncodeToString(b[8:16]), "note ' with \" quotes")
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return db
}

// digest hashes every table's rows in primary-key order.
func digest(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", fileURI(path, "mode=ro"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := sha256.New()
	for _, q := range []string{
		"SELECT id, name, blob FROM items ORDER BY id",
		"SELECT k, v, NULL FROM notes ORDER BY k",
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		n := 0
		for rows.Next() {
			var a, b, c any
			if err := rows.Scan(&a, &b, &c); err != nil {
				t.Fatal(err)
			}
			h.Write([]byte(fmtRow(a, b, c)))
			n++
		}
		rows.Close()
		h.Write([]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fmtRow(vs ...any) string {
	var buf bytes.Buffer
	for _, v := range vs {
		switch v := v.(type) {
		case []byte:
			buf.WriteString(hex.EncodeToString(v))
		case string:
			buf.WriteString(v)
		case int64:
			buf.WriteString(time.Duration(v).String())
		case nil:
			buf.WriteString("NULL")
		}
		buf.WriteByte('|')
	}
	buf.WriteByte('\n')
	return buf.String()
}

// TestConformance runs the SDK's conformance kit, as every plugin should.
func TestConformance(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app.db")
	seed(t, src, 2000) // ~9 MiB
	want := digest(t, src)
	sdktest.RunDumperSuite(t, sdktest.DumperSuite{
		New:         func(*testing.T) sdk.Dumper { return New() },
		Target:      conn(src),
		Unreachable: conn("/does/not/exist.db"),
		Restore: func(t *testing.T, c *sdk.DumperClient, dump []byte) {
			dst := filepath.Join(t.TempDir(), "restored.db")
			if _, err := c.Restore(context.Background(), conn(dst), Format, bytes.NewReader(dump)); err != nil {
				t.Fatalf("restore: %v", err)
			}
			if got := digest(t, dst); got != want {
				t.Errorf("restored tables differ from the source")
			}
			if err := IntegrityCheck(context.Background(), dst); err != nil {
				t.Error(err)
			}
		},
	})
}

// TestRoundTripWhileWriting dumps a database whose recent commits are still
// only in its write-ahead log, while a writer keeps a transaction open:
// the snapshot holds every committed row and none of the uncommitted ones,
// which a plain file copy would not guarantee.
func TestRoundTripWhileWriting(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "app.db")
	db := seed(t, src, 300)
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, db, "INSERT INTO notes VALUES ('committed-in-wal', 'yes')")
	want := digest(t, src)
	if st, err := os.Stat(src + "-wal"); err != nil || st.Size() == 0 {
		t.Fatalf("expected a non-empty WAL: %v", err)
	}

	// A second writer with an open, uncommitted transaction.
	w := open(t, src)
	tx, err := w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("INSERT INTO notes VALUES ('uncommitted', 'no')"); err != nil {
		t.Fatal(err)
	}

	c := sdktest.DumperClient(t, New())
	var dump bytes.Buffer
	res, err := c.Dump(ctx, conn(src), &dump)
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != Format || res.Extension != Extension || !bytes.HasPrefix(dump.Bytes(), []byte("SQLite format 3\x00")) {
		t.Fatalf("result %+v, dump starts %q", res, dump.Bytes()[:16])
	}

	// Restore over an existing, different database: replaced atomically.
	dst := filepath.Join(t.TempDir(), "dst.db")
	other := open(t, dst)
	mustExec(t, other, "CREATE TABLE old (x)")
	other.Close()
	if err := os.Chmod(dst, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Restore(ctx, conn(dst), res.Format, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := digest(t, dst); got != want {
		t.Error("restored tables differ from the committed source")
	}
	if err := IntegrityCheck(ctx, dst); err != nil {
		t.Error(err)
	}
	check := open(t, dst)
	var n int
	check.QueryRow("SELECT count(*) FROM notes WHERE k = 'uncommitted'").Scan(&n)
	if n != 0 {
		t.Error("the snapshot holds an uncommitted row")
	}
	check.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'old'").Scan(&n)
	if n != 0 {
		t.Error("the old database survived the restore")
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o640 {
		t.Errorf("restored file mode %v, want the old file's 0640", st.Mode().Perm())
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".dst.db.restore-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestRestoreRejectsCorruptDumpAndKeepsTarget(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dst := filepath.Join(dir, "keep.db")
	db := seed(t, dst, 10)
	db.Close()
	before := digest(t, dst)

	src := filepath.Join(t.TempDir(), "src.db")
	seed(t, src, 50).Close()
	var dump bytes.Buffer
	if _, err := sdktest.DumperClient(t, New()).Dump(ctx, conn(src), &dump); err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(dump.Bytes())
	for i := 4096; i < len(corrupt); i += 4096 { // damage every page but the header
		copy(corrupt[i+100:i+200], bytes.Repeat([]byte{0xff}, 100))
	}
	for name, data := range map[string][]byte{
		"random bytes":  bytes.Repeat([]byte("not a database"), 1000),
		"damaged pages": corrupt,
	} {
		_, err := New().Restore(ctx, conn(dst), Format, bytes.NewReader(data))
		if !errors.Is(err, sdk.ErrIntegrity) {
			t.Errorf("%s: err = %v, want ErrIntegrity", name, err)
		}
	}
	if digest(t, dst) != before {
		t.Error("a failed restore changed the target")
	}
	if err := IntegrityCheck(ctx, dst); err != nil {
		t.Error(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".keep.db.restore-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestRestoreRefusesLiveWAL(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "live.db")
	db := seed(t, dst, 5)
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, db, "INSERT INTO notes VALUES ('x', 'y')")
	_, err := New().Restore(context.Background(), conn(dst), Format, bytes.NewReader(nil))
	if !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

func TestBadTargets(t *testing.T) {
	ctx := context.Background()
	notDB := filepath.Join(t.TempDir(), "plain.txt")
	os.WriteFile(notDB, bytes.Repeat([]byte("hello "), 1000), 0o600)
	for conn, want := range map[string]error{
		"":                        sdk.ErrInvalidArgument,
		"sqlite://relative.db":    sdk.ErrInvalidArgument,
		"sqlite:relative.db":      sdk.ErrInvalidArgument,
		"file:///tmp/x.db":        sdk.ErrInvalidArgument,
		"sqlite:///tmp/x.db?a=b":  sdk.ErrInvalidArgument,
		"sqlite:///missing.db":    sdk.ErrNotFound,
		"sqlite://" + notDB:       sdk.ErrInvalidArgument,
		"sqlite://" + t.TempDir(): sdk.ErrInvalidArgument,
	} {
		if _, err := New().Validate(ctx, sdk.Target{Connection: conn}); !errors.Is(err, want) {
			t.Errorf("validate %q: err = %v, want %v", conn, err, want)
		}
	}
	exec := sdk.Target{Connection: "sqlite://" + notDB, Options: map[string]string{"mode": "exec"}}
	if _, err := New().Validate(ctx, exec); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("validate in exec mode: err = %v, want ErrUnsupported", err)
	}
	if _, err := os.Stat("/missing.db"); err == nil {
		t.Error("validation created the missing database file")
	}
}

// TestRestoreIntoEmptyFile: "label-backup restore" validates the target
// before restoring, and validation needs the file to exist; an empty file
// (touch) is a valid, empty SQLite database.
func TestRestoreIntoEmptyFile(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src.db")
	seed(t, src, 20).Close()
	var dump bytes.Buffer
	if _, err := New().Dump(ctx, conn(src), &dump); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "new.db")
	if err := os.WriteFile(dst, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New().Validate(ctx, conn(dst)); err != nil {
		t.Fatalf("validate an empty file: %v", err)
	}
	if _, err := New().Restore(ctx, conn(dst), Format, &dump); err != nil {
		t.Fatal(err)
	}
	if digest(t, dst) != digest(t, src) {
		t.Error("restored tables differ")
	}
}
