package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

// Tests with fake tools: shell scripts that record how they were run (argv,
// the option file, its mode, the environment) and answer as told. They
// check what the plugin hands the tools, and behaviours a real server
// cannot be made to show (a dump tool that exits 0 with a cut output).

// recorder is prepended to every fake: it records one run into $log/<n>.*
// where n counts runs of that tool.
const recorder = `#!/bin/sh
log=%q
tool=$(basename "$0")
n=$(ls "$log" | grep -c "^$tool\.[0-9]*\.argv$")
p="$log/$tool.$n"
printf '%%s\n' "$@" > "$p.argv"
env > "$p.env"
case "$1" in --defaults-file=*)
	f="${1#--defaults-file=}"
	cp "$f" "$p.cnf"
	stat -c %%a "$f" > "$p.mode"
	stat -c %%a "$(dirname "$f")" > "$p.dirmode"
	echo "$f" > "$p.path"
esac
`

// completeDump is a small dump as mariadb-dump writes it.
const completeDump = `/*M!999999\- enable the sandbox mode */ 
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: db    Database: shop
-- ------------------------------------------------------
CREATE TABLE t (id int);
INSERT INTO t VALUES (1),(2);

-- Dump completed on 2025-01-24  2:00:00
`

type fakeTools struct {
	dir, log string
}

// newFakeTools writes fakes named after the keys of bodies; each body runs
// after the recorder.
func newFakeTools(t *testing.T, bodies map[string]string) *fakeTools {
	t.Helper()
	f := &fakeTools{dir: t.TempDir(), log: t.TempDir()}
	for name, body := range bodies {
		script := fmt.Sprintf(recorder, f.log) + body + "\n"
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fakeTools) plugin(t *testing.T) *Plugin {
	t.Helper()
	p := New()
	if err := p.Configure(context.Background(), map[string]string{"bin_dir": f.dir}); err != nil {
		t.Fatal(err)
	}
	return p
}

// run reads a recorded file of run n of tool ("" when absent).
func (f *fakeTools) read(t *testing.T, tool string, n int, ext string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.log, fmt.Sprintf("%s.%d.%s", tool, n, ext)))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func (f *fakeTools) runs(tool string) int {
	m, _ := filepath.Glob(filepath.Join(f.log, tool+".*.argv"))
	return len(m)
}

// A fake client answering the connection check with cipher and copying
// restore input to $log/restore.sql.
func fakeClient(cipher string) string {
	return fmt.Sprintf(`case "$*" in
*--version*) echo "mariadb from 10.11.19-MariaDB, client 15.2 for debian-linux-gnu (x86_64)" ;;
*--execute=*) printf '10.11.99-MariaDB-fake\nSsl_cipher\t%s\n' ;;
*) cat > "$log/restore.sql" ;;
esac`, cipher)
}

const secretPW = `Fake"Secr3t #pw`

var (
	secretBase = "mysql://app:" + strings.NewReplacer(`"`, "%22", " ", "%20", "#", "%23").Replace(secretPW) + "@db.example:3307"
	secretURI  = secretBase + "/shop"
)

// checkRun checks one recorded run: option file first and private, no
// secret in argv or environment, HOME private.
func checkRun(t *testing.T, f *fakeTools, tool string, n int) (argv []string, cnf string) {
	t.Helper()
	argv = strings.Split(strings.TrimSuffix(f.read(t, tool, n, "argv"), "\n"), "\n")
	cnf = f.read(t, tool, n, "cnf")
	path := strings.TrimSpace(f.read(t, tool, n, "path"))
	if len(argv) == 0 || argv[0] != "--defaults-file="+path || path == "" {
		t.Fatalf("%s run %d: argv %q does not start with the option file %q", tool, n, argv, path)
	}
	if m := strings.TrimSpace(f.read(t, tool, n, "mode")); m != "600" {
		t.Errorf("%s run %d: option file mode %s", tool, n, m)
	}
	if m := strings.TrimSpace(f.read(t, tool, n, "dirmode")); m != "700" {
		t.Errorf("%s run %d: option file directory mode %s", tool, n, m)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s run %d: option file %s still there after the run", tool, n, path)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("%s run %d: private directory still there after the run", tool, n)
	}
	env := f.read(t, tool, n, "env")
	for _, s := range []string{secretPW, "Secr3t", "db.example"} {
		if strings.Contains(strings.Join(argv, " "), s) {
			t.Errorf("%s run %d: argv contains %q: %q", tool, n, s, argv)
		}
		if strings.Contains(env, s) {
			t.Errorf("%s run %d: environment contains %q", tool, n, s)
		}
	}
	if !strings.Contains(env, "HOME="+filepath.Dir(path)+"\n") || strings.Contains(env, "MYSQL_PWD") {
		t.Errorf("%s run %d: environment\n%s", tool, n, env)
	}
	if !strings.Contains(cnf, "password=\"Fake\\\"Secr3t #pw\"\n") || !strings.Contains(cnf, "host=\"db.example\"\nport=3307\n") {
		t.Errorf("%s run %d: option file\n%s", tool, n, cnf)
	}
	return argv, cnf
}

func TestFakeToolsRuns(t *testing.T) {
	f := newFakeTools(t, map[string]string{
		"mariadb":      fakeClient("TLS_AES_256_GCM_SHA384"),
		"mariadb-dump": "printf '%s' " + shellQuote(completeDump) + "\necho 'Warning: a warning' >&2",
	})
	p := f.plugin(t)
	ctx := context.Background()
	target := sdk.Target{Connection: secretURI + "?ssl-mode=REQUIRED"}

	res, err := p.Validate(ctx, target)
	if err != nil || res.ServerVersion != "10.11.99-MariaDB-fake" {
		t.Fatalf("Validate: %+v, %v", res, err)
	}
	argv, cnf := checkRun(t, f, "mariadb", 0)
	if !slices.Contains(argv, "--database=shop") || !slices.Contains(argv, "--execute="+checkQuery) {
		t.Errorf("check argv %q", argv)
	}
	if !strings.Contains(cnf, "\nssl\nskip-ssl-verify-server-cert\n") {
		t.Errorf("check option file lacks the TLS mode:\n%s", cnf)
	}

	var dump bytes.Buffer
	dres, err := p.Dump(ctx, target, &dump)
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if dump.String() != completeDump || dres.Format != Format || dres.Extension != Extension || dres.Bytes != int64(len(completeDump)) {
		t.Errorf("Dump result %+v, output %q", dres, dump.String())
	}
	if !slices.Equal(dres.Warnings, []string{"Warning: a warning"}) {
		t.Errorf("warnings %q", dres.Warnings)
	}
	// REQUIRED with MariaDB's tools: the client checked the session first.
	if n := f.runs("mariadb"); n != 2 {
		t.Errorf("client ran %d times, want 2 (Validate, the check before the dump)", n)
	}
	argv, dumpCnf := checkRun(t, f, "mariadb-dump", 0)
	if argv[len(argv)-2] != "--" || argv[len(argv)-1] != "shop" || !slices.Contains(argv, "--single-transaction") {
		t.Errorf("dump argv %q", argv)
	}
	_, checkCnf := checkRun(t, f, "mariadb", 1)
	if dumpCnf != checkCnf {
		t.Errorf("the dump and the check got different settings:\n%s\n%s", dumpCnf, checkCnf)
	}

	// Restore into another database, named by Target.Database.
	rtarget := target
	rtarget.Database = "other"
	if _, err := p.Restore(ctx, rtarget, Format, strings.NewReader(completeDump)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	argv, _ = checkRun(t, f, "mariadb", 3)
	if !slices.Contains(argv, "--database=other") || !slices.Contains(argv, "--binary-mode") {
		t.Errorf("restore argv %q", argv)
	}
	if got, _ := os.ReadFile(filepath.Join(f.log, "restore.sql")); string(got) != completeDump {
		t.Errorf("the client got %q", got)
	}
}

func TestFakeDumpOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		dump     string // the fake's body
		cipher   string // the fake client's Ssl_cipher
		conn     string
		wantErr  error // nil: success
		wantText string
		dumpRuns int
	}{
		{name: "complete", dump: "printf '%s' " + shellQuote(completeDump), conn: secretURI, dumpRuns: 1},
		{name: "exit 0 without the marker is truncated", dump: "printf -- '-- MariaDB dump\\nINSERT INTO t VALUES (1),(2'",
			conn: secretURI, wantErr: sdk.ErrIntegrity, wantText: "truncated", dumpRuns: 1},
		{name: "marker not on the last line", dump: "printf -- '-- Dump completed on x\\nINSERT INTO t VALUES (1);\\n'",
			conn: secretURI, wantErr: sdk.ErrIntegrity, wantText: "truncated", dumpRuns: 1},
		{name: "no output", dump: "exit 0", conn: secretURI, wantErr: sdk.ErrEmptyDump, dumpRuns: 1},
		{name: "access denied", dump: `echo "mariadb-dump: Got error: 1045: \"Access denied for user 'app'@'10.0.0.1' (using password: YES)\" when trying to connect" >&2; exit 2`,
			conn: secretURI, wantErr: sdk.ErrUnauthenticated, wantText: "Access denied", dumpRuns: 1},
		{name: "the password in a message is scrubbed", dump: `echo "odd: Fake\"Secr3t #pw" >&2; exit 2`,
			conn: secretURI, wantErr: errAny, wantText: "odd: ***", dumpRuns: 1},
		{name: "REQUIRED, server without TLS: no dump", dump: "printf '%s' " + shellQuote(completeDump),
			conn: secretURI + "?ssl-mode=REQUIRED", wantErr: errAny, wantText: "ssl-mode=REQUIRED, but the server did not encrypt", dumpRuns: 0},
		{name: "REQUIRED, TLS session", dump: "printf '%s' " + shellQuote(completeDump), cipher: "TLS_AES_128_GCM_SHA256",
			conn: secretURI + "?ssl-mode=REQUIRED", dumpRuns: 1},
		{name: "VERIFY_IDENTITY is left to the tool", dump: "printf '%s' " + shellQuote(completeDump),
			conn: secretURI + "?ssl-mode=VERIFY_IDENTITY", dumpRuns: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTools(t, map[string]string{"mariadb": fakeClient(tc.cipher), "mariadb-dump": tc.dump})
			var out bytes.Buffer
			_, err := f.plugin(t).Dump(context.Background(), sdk.Target{Connection: tc.conn}, &out)
			if n := f.runs("mariadb-dump"); n != tc.dumpRuns {
				t.Errorf("dump tool ran %d times, want %d", n, tc.dumpRuns)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Dump: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Dump succeeded with %q", out.String())
			}
			if tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %q does not wrap %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q lacks %q", err, tc.wantText)
			}
			if strings.Contains(err.Error(), "Secr3t") {
				t.Errorf("error shows the password: %q", err)
			}
		})
	}
}

// TestFakeMySQLFlavor: tools named mysql and mysqldump that say they are
// MySQL's get ssl-mode as it is; asked once per path.
func TestFakeMySQLFlavor(t *testing.T) {
	versionCase := func(version, body string) string {
		return fmt.Sprintf("case \"$*\" in *--version*) echo %q; exit 0 ;; esac\n%s", version, body)
	}
	tests := []struct {
		name      string
		version   string
		wantLines string
		wantGroup bool // [mysqldump] loose-column-statistics=0
	}{
		{"MySQL", "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)", "\nssl-mode=VERIFY_IDENTITY\n", true},
		{"MariaDB under the old names", "mysqldump from 11.4.2-MariaDB, client 10.19 for Linux (x86_64)", "\nssl\nssl-verify-server-cert\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTools(t, map[string]string{
				"mysql":     versionCase(tc.version, `printf '8.0.36\nSsl_cipher\tTLS_AES_256_GCM_SHA384\n'`),
				"mysqldump": versionCase(tc.version, "printf '%s' "+shellQuote(completeDump)),
			})
			p := f.plugin(t)
			target := sdk.Target{Connection: secretURI + "?ssl-mode=VERIFY_IDENTITY&ssl-ca=/ca.pem"}
			for range 2 {
				if _, err := p.Validate(context.Background(), target); err != nil {
					t.Fatal(err)
				}
				if _, err := p.Dump(context.Background(), target, io.Discard); err != nil {
					t.Fatal(err)
				}
			}
			// Runs: --version once per tool, then the real runs.
			if n := f.runs("mysql"); n != 3 {
				t.Errorf("mysql ran %d times, want 3", n)
			}
			if n := f.runs("mysqldump"); n != 3 {
				t.Errorf("mysqldump ran %d times, want 3", n)
			}
			if v := f.read(t, "mysqldump", 0, "argv"); v != "--version\n" {
				t.Errorf("first mysqldump run %q", v)
			}
			_, cnf := checkRun(t, f, "mysqldump", 1)
			if !strings.Contains(cnf, "ssl-ca=\"/ca.pem\""+tc.wantLines) {
				t.Errorf("option file lacks %q:\n%s", tc.wantLines, cnf)
			}
			if got := strings.Contains(cnf, "[mysqldump]\nloose-column-statistics=0\n"); got != tc.wantGroup {
				t.Errorf("column-statistics group %v, want %v:\n%s", got, tc.wantGroup, cnf)
			}
		})
	}
}

func TestFakeRestoreOutcomes(t *testing.T) {
	errUpload := fmt.Errorf("trailer mismatch (test): %w", sdk.ErrIntegrity)
	allDump := strings.Replace(completeDump, "Database: shop", "Database: ", 1)
	tests := []struct {
		name      string
		db        string
		input     func() io.Reader
		wantErr   error // nil: success
		wantText  string
		wantWarn  string
		wantInput string // what the client must have read; "-" for no restore run
	}{
		{name: "single-database dump into a named database", db: "other",
			input: func() io.Reader { return strings.NewReader(completeDump) }, wantInput: completeDump},
		{name: "single-database dump, no database named", db: "",
			input:   func() io.Reader { return strings.NewReader(completeDump) },
			wantErr: sdk.ErrInvalidArgument, wantText: `holds database "shop" only`, wantInput: "-"},
		{name: "all-databases dump, no database named", db: "",
			input: func() io.Reader { return strings.NewReader(allDump) }, wantInput: allDump},
		{name: "all-databases dump, a database named", db: "other",
			input: func() io.Reader { return strings.NewReader(allDump) }, wantInput: allDump, wantWarn: "the dump holds all databases"},
		{name: "hand-written SQL needs no marker", db: "other",
			input: func() io.Reader { return strings.NewReader("CREATE TABLE x (id int);\n") }, wantInput: "CREATE TABLE x (id int);\n"},
		{name: "large input", db: "other",
			input: func() io.Reader {
				return strings.NewReader(strings.Replace(completeDump, "CREATE TABLE", strings.Repeat("SELECT 1;\n", 50000)+"CREATE TABLE", 1))
			},
			wantInput: strings.Replace(completeDump, "CREATE TABLE", strings.Repeat("SELECT 1;\n", 50000)+"CREATE TABLE", 1)},
		{name: "truncated dump", db: "other",
			input:   func() io.Reader { return strings.NewReader(completeDump[:len(completeDump)-50]) },
			wantErr: sdk.ErrIntegrity, wantText: "truncated", wantInput: completeDump[:len(completeDump)-50]},
		{name: "empty input", db: "other",
			input:   func() io.Reader { return strings.NewReader(" \n") },
			wantErr: sdk.ErrInvalidArgument, wantText: "empty", wantInput: "-"},
		{name: "broken upload at the start", db: "other",
			input:   func() io.Reader { return &brokenReader{r: strings.NewReader("-- MariaDB"), err: errUpload} },
			wantErr: sdk.ErrIntegrity, wantText: "trailer mismatch", wantInput: "-"},
		{name: "broken upload after the whole dump", db: "other",
			input: func() io.Reader {
				return &brokenReader{r: strings.NewReader(strings.Repeat("SELECT 1;\n", 2000) + completeDump), err: errUpload}
			},
			wantErr: sdk.ErrIntegrity, wantText: "trailer mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTools(t, map[string]string{"mariadb": fakeClient(""), "mariadb-dump": "exit 1"})
			res, err := f.plugin(t).Restore(context.Background(), sdk.Target{Connection: secretBase + "/", Database: tc.db}, "", tc.input())
			got, rerr := os.ReadFile(filepath.Join(f.log, "restore.sql"))
			switch {
			case tc.wantInput == "-":
				if rerr == nil {
					t.Errorf("the client restored %q", got)
				}
			case tc.wantInput != "" && string(got) != tc.wantInput:
				t.Errorf("the client read %d bytes, want %d", len(got), len(tc.wantInput))
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Restore: %v", err)
				}
				if tc.wantWarn != "" && !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, tc.wantWarn) }) {
					t.Errorf("warnings %q lack %q", res.Warnings, tc.wantWarn)
				}
				return
			}
			if err == nil {
				t.Fatal("Restore succeeded")
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %q does not wrap %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q lacks %q", err, tc.wantText)
			}
		})
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

// errAny marks a case that must fail, with any error.
var errAny = errors.New("any error")

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
