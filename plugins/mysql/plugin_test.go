package mysql

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		stderr string
		want   error // nil: no sentinel
	}{
		{`ERROR 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: YES)`, sdk.ErrUnauthenticated},
		{`mariadb-dump: Got error: 1045: "Access denied for user 'app'@'localhost' (using password: YES)" when trying to connect`, sdk.ErrUnauthenticated},
		{`mysqldump: Got error: 1045: Access denied for user 'app'@'10.0.0.2' (using password: NO) when trying to connect`, sdk.ErrUnauthenticated},
		{`ERROR 1698 (28000): Access denied for user 'root'@'localhost'`, sdk.ErrUnauthenticated},
		{`ERROR 1862 (HY000): Your password has expired. To log in you must change it using a client that supports expired passwords.`, sdk.ErrUnauthenticated},
		{`ERROR 1049 (42000): Unknown database 'nope'`, sdk.ErrNotFound},
		{`mariadb-dump: Got error: 1049: "Unknown database 'nope'" when selecting the database`, sdk.ErrNotFound},
		{`ERROR 1044 (42000): Access denied for user 'limited'@'127.0.0.1' to database 'other'`, sdk.ErrPermission},
		{`mysqldump: Couldn't execute 'show events': Access denied for user 'bk'@'%' to database 'shop' (1044)`, sdk.ErrPermission},
		{`mariadb-dump: Couldn't execute 'SHOW CREATE PROCEDURE p': Access denied; you need (at least one of) the SELECT privilege(s) for this operation (1227)`, sdk.ErrPermission},
		{`mysqldump: Error: 'Access denied; you need (at least one of) the PROCESS privilege(s) for this operation' when trying to dump tablespaces`, sdk.ErrPermission},
		{`ERROR 1130 (HY000): Host '10.1.1.1' is not allowed to connect to this MariaDB server`, sdk.ErrPermission},
		{`ERROR 4151 (HY000): Access denied, this account is locked`, sdk.ErrPermission},
		{`ERROR 2002 (HY000): Can't connect to server on '127.0.0.1' (115)`, sdk.ErrUnavailable},
		{`ERROR 2003 (HY000): Can't connect to MySQL server on '10.9.9.9:3306' (110)`, sdk.ErrUnavailable},
		{`mariadb-dump: Got error: 2005: "Unknown server host 'db.invalid' (-2)" when trying to connect`, sdk.ErrUnavailable},
		{`ERROR 2013 (HY000) at line 42: Lost connection to server during query`, sdk.ErrUnavailable},
		{`ERROR 1040 (HY000): Too many connections`, sdk.ErrUnavailable},
		{`mysqldump: Error 2013: Lost connection to MySQL server during query when dumping table 't' at row: 1234`, sdk.ErrUnavailable},
		{`ERROR 2026 (HY000): TLS/SSL error: SSL is required, but the server does not support it`, nil},
		{`ERROR 1064 (42000) at line 3: You have an error in your SQL syntax; check the manual`, nil},
		{`ERROR 1050 (42S01) at line 20: Table 'items' already exists`, nil},
		{`mariadb: unknown variable 'ssl-mode=REQUIRED'`, nil},
	}
	for _, tc := range tests {
		in := &toolexec.ExitError{Tool: "mariadb", ExitCode: 1, Stderr: tc.stderr}
		err := classify(in)
		for _, s := range []error{sdk.ErrUnauthenticated, sdk.ErrNotFound, sdk.ErrPermission, sdk.ErrUnavailable} {
			if got := errors.Is(err, s); got != (s == tc.want) {
				t.Errorf("%q: errors.Is(%v) = %v", tc.stderr, s, got)
			}
		}
		var xe *toolexec.ExitError
		if !errors.As(err, &xe) || !strings.Contains(err.Error(), tc.stderr) {
			t.Errorf("%q: classified error %q lost the tool's error", tc.stderr, err)
		}
	}
	// Errors that are not a tool's exit pass through unchanged.
	plain := errors.New("x")
	if classify(plain) != plain {
		t.Error("classify changed a plain error")
	}
	if err := classify(context.Canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("classify lost context.Canceled: %v", err)
	}
}

func TestInfo(t *testing.T) {
	i := New().Info()
	if i.Name != "mysql" || i.Version != "0.1.0" || i.Kind != sdk.KindDumper ||
		!i.Has(sdk.CapRestore) || len(i.Capabilities) != 1 || i.DefaultExtension != ".sql" {
		t.Errorf("Info %+v", i)
	}
	if len(i.Options) != 1 || i.Options[0].Name != "bin_dir" || i.Options[0].Secret {
		t.Errorf("Options %+v", i.Options)
	}
}

func TestConfigure(t *testing.T) {
	script := []byte("#!/bin/sh\n")
	mk := func(names ...string) string {
		d := t.TempDir()
		for _, n := range names {
			if err := os.WriteFile(d+"/"+n, script, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	maria := mk("mariadb", "mariadb-dump")
	oracle := mk("mysql", "mysqldump")
	both := mk("mariadb", "mariadb-dump", "mysql", "mysqldump")
	mixed := mk("mariadb", "mysqldump")
	noClient := mk("mariadb-dump")
	noDump := mk("mysql")
	notExec := t.TempDir()
	for _, n := range []string{"mariadb", "mariadb-dump"} {
		if err := os.WriteFile(notExec+"/"+n, script, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name       string
		settings   map[string]string
		wantDump   string // path of the dump tool after Configure; "" means an error
		wantClient string
	}{
		{"MariaDB names", map[string]string{"bin_dir": maria + "/"}, maria + "/mariadb-dump", maria + "/mariadb"},
		{"MySQL names", map[string]string{"bin_dir": oracle}, oracle + "/mysqldump", oracle + "/mysql"},
		{"MariaDB names preferred", map[string]string{"bin_dir": both}, both + "/mariadb-dump", both + "/mariadb"},
		{"mixed names", map[string]string{"bin_dir": mixed}, mixed + "/mysqldump", mixed + "/mariadb"},
		{"relative bin_dir", map[string]string{"bin_dir": "bin"}, "", ""},
		{"missing dir", map[string]string{"bin_dir": maria + "/nope"}, "", ""},
		{"no client", map[string]string{"bin_dir": noClient}, "", ""},
		{"no dump tool", map[string]string{"bin_dir": noDump}, "", ""},
		{"not executable", map[string]string{"bin_dir": notExec}, "", ""},
		{"unknown setting", map[string]string{"bindir": maria}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New()
			err := p.Configure(context.Background(), tc.settings)
			if tc.wantDump == "" {
				if !errors.Is(err, sdk.ErrInvalidArgument) {
					t.Fatalf("Configure: %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, err := p.findTool(dumpTool); got != tc.wantDump || err != nil {
				t.Errorf("dump tool %q (%v), want %q", got, err, tc.wantDump)
			}
			if got, err := p.findTool(clientTool); got != tc.wantClient || err != nil {
				t.Errorf("client %q (%v), want %q", got, err, tc.wantClient)
			}
		})
	}
	// Without bin_dir the tools come from PATH.
	p := New()
	if err := p.Configure(context.Background(), map[string]string{"bin_dir": ""}); err != nil {
		t.Fatal(err)
	}
	want, err := exec.LookPath("mariadb-dump")
	if err != nil {
		t.Fatalf("mariadb-dump not in PATH: run scripts/install-deps.sh")
	}
	if got, err := p.findTool(dumpTool); got != want || err != nil {
		t.Errorf("dump tool from PATH %q (%v), want %q", got, err, want)
	}
}

func TestToolMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := New().Validate(context.Background(), sdk.Target{Connection: "mysql://app:Sup3rSecretPW@db/x"})
	if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "install the MariaDB or MySQL client tools") {
		t.Errorf("got %v", err)
	}
	if strings.Contains(err.Error(), "Sup3rSecretPW") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestRestoreRejectsFormat(t *testing.T) {
	for _, f := range []string{"sql", "pg_dump-custom", "MYSQLDUMP-SQL", "tar"} {
		_, err := New().Restore(context.Background(), sdk.Target{Connection: "mysql://db/x"}, f, strings.NewReader("SELECT 1;"))
		if !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("format %q: %v, want ErrInvalidArgument", f, err)
		}
	}
}

func TestBadConnectionNeverReachesTools(t *testing.T) {
	// A plugin whose tools do not exist: a bad connection string must be
	// rejected before any tool would run.
	p := New()
	p.binDir = "/nonexistent"
	const conn = "postgresql://root:Sup3rSecretPW@db/x"
	ctx := context.Background()
	_, errV := p.Validate(ctx, sdk.Target{Connection: conn})
	_, errD := p.Dump(ctx, sdk.Target{Connection: conn}, &strings.Builder{})
	_, errR := p.Restore(ctx, sdk.Target{Connection: conn}, "", strings.NewReader("x"))
	for _, err := range []error{errV, errD, errR} {
		if !errors.Is(err, sdk.ErrInvalidArgument) || strings.Contains(err.Error(), "Sup3rSecretPW") {
			t.Errorf("got %v", err)
		}
	}
}
