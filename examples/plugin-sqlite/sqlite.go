// Package sqlite is an example third-party dumper plugin for SQLite,
// written only against the Label Backup SDK.
//
// A target's connection names the database file by absolute path:
//
//	sqlite:///var/lib/app/app.db
//
// Dump takes a consistent snapshot with SQLite's VACUUM INTO, which reads
// the database inside one read transaction (so it sees every committed
// transaction, including those still only in a WAL file, and none that
// commit later) while the application keeps writing, then streams the
// snapshot file. Restore writes the stream next to the target file,
// checks it with PRAGMA integrity_check, and renames it over the target,
// so the target is either the old database or the complete new one.
//
// The driver is modernc.org/sqlite, pure Go: the plugin is one static
// binary that needs no sqlite3 library or tool in the agent's image.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/labelbackup/label-backup/sdk"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Format and Extension describe every dump: a plain SQLite database file.
const (
	Format    = "sqlite3-file"
	Extension = ".db"
)

// Dumper implements sdk.Dumper and sdk.Restorer.
type Dumper struct {
	// TempDir holds snapshots while they are streamed; "" is os.TempDir().
	TempDir string
}

// New returns the plugin's implementation.
func New() *Dumper { return &Dumper{} }

// Info describes the plugin. Its Name must match the binary's name,
// label-backup-plugin-sqlite, and the containers' backup.type label.
func (*Dumper) Info() sdk.Info {
	return sdk.Info{
		Name:             "sqlite",
		Version:          "0.1.0",
		Kind:             sdk.KindDumper,
		Capabilities:     []string{sdk.CapRestore},
		DefaultExtension: Extension,
	}
}

// dbPath extracts the database file of a target from its
// sqlite:///absolute/path connection.
func dbPath(t sdk.Target) (string, error) {
	u, err := url.Parse(t.Connection)
	if err != nil || u.Scheme != "sqlite" || u.Host != "" || u.Opaque != "" ||
		!filepath.IsAbs(u.Path) || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("connection must be a sqlite:///absolute/path.db URL: %w", sdk.ErrInvalidArgument)
	}
	// The host passes the backup.mode label as Options["mode"]. This plugin
	// reads the file itself, so the database's volume must be mounted into
	// the agent; it cannot work inside the database's container.
	if t.Options["mode"] == "exec" {
		return "", fmt.Errorf("backup.mode exec is not supported: mount the database's volume into the agent: %w", sdk.ErrUnsupported)
	}
	return filepath.Clean(u.Path), nil
}

// openReadOnly opens an existing database file read-only: SQLite would
// otherwise create a missing file.
func openReadOnly(path string) (*sql.DB, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("database file %s: %w", path, sdk.ErrNotFound)
	}
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("database file %s: %w", path, sdk.ErrPermission)
	}
	if err != nil {
		return nil, fmt.Errorf("database file %s: %v: %w", path, err, sdk.ErrUnavailable)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", path, sdk.ErrInvalidArgument)
	}
	db, err := sql.Open("sqlite", fileURI(path, "mode=ro"))
	if err != nil {
		return nil, err
	}
	// One connection is all a dump needs; it also keeps VACUUM INTO and
	// the checks on the same read snapshot semantics.
	db.SetMaxOpenConns(1)
	return db, nil
}

// fileURI is an SQLite URI filename for path with query parameters. A
// busy timeout lets a dump wait for a writer holding an exclusive lock.
func fileURI(path, query string) string {
	u := url.URL{Scheme: "file", Path: path}
	return u.String() + "?" + query + "&_pragma=busy_timeout(10000)"
}

// Validate opens the database and reads its schema, which fails for a
// missing file or one that is not an SQLite database.
func (*Dumper) Validate(ctx context.Context, t sdk.Target) (sdk.ValidateResult, error) {
	path, err := dbPath(t)
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	db, err := openReadOnly(path)
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	defer db.Close()
	return check(ctx, db, path)
}

func check(ctx context.Context, db *sql.DB, path string) (sdk.ValidateResult, error) {
	var version string
	var tables int
	if err := db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&version); err != nil {
		return sdk.ValidateResult{}, classify(path, err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
		return sdk.ValidateResult{}, classify(path, err)
	}
	return sdk.ValidateResult{ServerVersion: "SQLite " + version}, nil
}

// classify maps an SQLite error to an SDK sentinel.
func classify(path string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case strings.Contains(msg, "not a database"), strings.Contains(msg, "malformed"):
		return fmt.Errorf("%s: %v: %w", path, err, sdk.ErrInvalidArgument)
	case strings.Contains(msg, "locked"), strings.Contains(msg, "busy"):
		return fmt.Errorf("%s: %v: %w", path, err, sdk.ErrUnavailable)
	case strings.Contains(msg, "permission"), strings.Contains(msg, "readonly"), strings.Contains(msg, "unable to open"):
		return fmt.Errorf("%s: %v: %w", path, err, sdk.ErrPermission)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// Dump snapshots the database with VACUUM INTO into a private temporary
// file and streams that file to w.
func (d *Dumper) Dump(ctx context.Context, t sdk.Target, w io.Writer) (sdk.DumpResult, error) {
	path, err := dbPath(t)
	if err != nil {
		return sdk.DumpResult{}, err
	}
	db, err := openReadOnly(path)
	if err != nil {
		return sdk.DumpResult{}, err
	}
	defer db.Close()
	res, err := check(ctx, db, path)
	if err != nil {
		return sdk.DumpResult{}, err
	}
	log := sdk.Logger(ctx)
	log.Info("dump starting", "file", path, "server", res.ServerVersion)

	dir, err := os.MkdirTemp(d.TempDir, "label-backup-sqlite-")
	if err != nil {
		return sdk.DumpResult{}, fmt.Errorf("snapshot directory: %w", err)
	}
	defer os.RemoveAll(dir)
	snap := filepath.Join(dir, "snapshot.db")
	// VACUUM INTO writes a compact, consistent copy of the database as of
	// the start of its read transaction. The file name is a bound
	// parameter: no quoting to get wrong.
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", snap); err != nil {
		if ctx.Err() != nil {
			return sdk.DumpResult{}, ctx.Err()
		}
		if strings.Contains(err.Error(), "full") {
			return sdk.DumpResult{}, fmt.Errorf("snapshot of %s: %v: %w", path, err, sdk.ErrNoSpace)
		}
		return sdk.DumpResult{}, fmt.Errorf("snapshot of %s: %w", path, classify(path, err))
	}
	db.Close()

	f, err := os.Open(snap)
	if err != nil {
		return sdk.DumpResult{}, err
	}
	defer f.Close()
	n, err := io.Copy(w, ctxReader{ctx, f})
	if err != nil {
		return sdk.DumpResult{}, fmt.Errorf("streaming snapshot of %s: %w", path, err)
	}
	log.Info("dump finished", "file", path, "bytes", n)
	return sdk.DumpResult{Format: Format, Extension: Extension}, nil
}

// ctxReader stops a copy as soon as ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Restore writes the dump next to the target file, checks it, and renames
// it over the target. The application using the database must be stopped
// first: a process holding the old file open keeps seeing the old data,
// and a non-empty write-ahead log (<file>-wal) would be replayed onto the
// new file, so Restore refuses when one exists.
func (d *Dumper) Restore(ctx context.Context, t sdk.Target, format string, r io.Reader) (sdk.RestoreResult, error) {
	path, err := dbPath(t)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	if format != "" && format != Format {
		return sdk.RestoreResult{}, fmt.Errorf("format %q is not %q: %w", format, Format, sdk.ErrInvalidArgument)
	}
	if st, err := os.Stat(path + "-wal"); err == nil && st.Size() > 0 {
		return sdk.RestoreResult{}, fmt.Errorf("%s-wal is not empty: stop the application using the database (or checkpoint it) before restoring: %w", path, sdk.ErrUnavailable)
	}
	mode := fs.FileMode(0o600)
	if st, err := os.Stat(path); err == nil {
		if !st.Mode().IsRegular() {
			return sdk.RestoreResult{}, fmt.Errorf("%s is not a regular file: %w", path, sdk.ErrInvalidArgument)
		}
		mode = st.Mode().Perm()
	}
	log := sdk.Logger(ctx)
	log.Info("restore starting", "file", path)

	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".restore-*")
	if errors.Is(err, fs.ErrNotExist) {
		return sdk.RestoreResult{}, fmt.Errorf("directory %s: %w", dir, sdk.ErrNotFound)
	}
	if err != nil {
		return sdk.RestoreResult{}, fmt.Errorf("restore file in %s: %w", dir, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// io.Copy reads to io.EOF, which the SDK returns only after the
	// upload's trailer (size and sha256) checked out.
	if _, err := io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		return sdk.RestoreResult{}, fmt.Errorf("receiving dump: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return sdk.RestoreResult{}, err
	}
	if err := tmp.Sync(); err != nil {
		return sdk.RestoreResult{}, err
	}
	if err := tmp.Close(); err != nil {
		return sdk.RestoreResult{}, err
	}
	if err := IntegrityCheck(ctx, tmp.Name()); err != nil {
		return sdk.RestoreResult{}, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return sdk.RestoreResult{}, fmt.Errorf("replacing %s: %w", path, err)
	}
	done = true
	syncDir(dir)
	log.Info("restore finished", "file", path)
	return sdk.RestoreResult{}, nil
}

// IntegrityCheck runs PRAGMA integrity_check on the database file at path
// and fails with sdk.ErrIntegrity unless it answers "ok".
func IntegrityCheck(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", fileURI(path, "mode=ro"))
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("the dump is not a usable SQLite database: %v: %w", err, sdk.ErrIntegrity)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check: %v: %w", err, sdk.ErrIntegrity)
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check: %s: %w", strings.Join(problems, "; "), sdk.ErrIntegrity)
	}
	return nil
}

// syncDir makes a rename in dir durable; failures are not fatal.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// Interface guards.
var (
	_ sdk.Dumper   = (*Dumper)(nil)
	_ sdk.Restorer = (*Dumper)(nil)
)
