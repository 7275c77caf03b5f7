package mysql

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

// fakeMariaContainer is an sdk.Executor standing in for the host's Docker
// exec into a container that has MariaDB's tools (or only MySQL's).
type fakeMariaContainer struct {
	mu        sync.Mutex
	cmds      []sdk.Command
	mysqlOnly bool
	files     map[string]string
}

const fakeDump = "-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB\n--\n-- Host: localhost    Database: shop\nCREATE TABLE t (x int);\n-- Dump completed on 2026-01-01\n"

func (f *fakeMariaContainer) Run(_ context.Context, c sdk.Command) (sdk.ExecResult, error) {
	f.mu.Lock()
	f.cmds = append(f.cmds, c)
	f.mu.Unlock()
	out := c.Stdout
	if out == nil {
		out = io.Discard
	}
	tool := c.Argv[0]
	if f.mysqlOnly && strings.HasPrefix(tool, "mariadb") {
		return sdk.ExecResult{}, &sdk.ExitError{Tool: tool, ExitCode: 127, Stderr: "executable file not found in $PATH"}
	}
	var n int
	switch {
	case len(c.Argv) == 2 && c.Argv[1] == "--version":
		v := "mariadb from 11.4.2-MariaDB"
		if f.mysqlOnly {
			v = "mysql  Ver 8.4.0 for Linux"
		}
		n, _ = io.WriteString(out, v)
	case tool == "mariadb" || tool == "mysql":
		if c.Stdin != nil {
			io.Copy(io.Discard, c.Stdin)
			break
		}
		n, _ = io.WriteString(out, "11.4.2-MariaDB\nSsl_cipher\t\n")
	case tool == "mariadb-dump" || tool == "mysqldump":
		n, _ = io.WriteString(out, fakeDump)
	case tool == "cat":
		content, ok := f.files[c.Argv[len(c.Argv)-1]]
		if !ok {
			return sdk.ExecResult{}, &sdk.ExitError{Tool: "cat", ExitCode: 1, Stderr: "No such file or directory"}
		}
		n, _ = io.WriteString(out, content)
	}
	return sdk.ExecResult{StdoutBytes: int64(n)}, nil
}

func (f *fakeMariaContainer) last(tool string) sdk.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.cmds) - 1; i >= 0; i-- {
		if f.cmds[i].Argv[0] == tool && !(len(f.cmds[i].Argv) == 2 && f.cmds[i].Argv[1] == "--version") {
			return f.cmds[i]
		}
	}
	return sdk.Command{}
}

func execModeTarget(env map[string]string) sdk.Target {
	return sdk.Target{Options: map[string]string{sdk.OptionMode: sdk.ModeExec}, ContainerEnv: env}
}

func TestExecModeZeroConfig(t *testing.T) {
	fc := &fakeMariaContainer{}
	ctx := sdk.WithExecutor(context.Background(), fc)
	target := execModeTarget(map[string]string{"MARIADB_USER": "app", "MARIADB_PASSWORD": "pw-Secret", "MARIADB_DATABASE": "shop"})
	var out bytes.Buffer
	if _, err := New().Dump(ctx, target, &out); err != nil || out.String() != fakeDump {
		t.Fatalf("out %q err %v", out.String(), err)
	}
	c := fc.last("mariadb-dump")
	argv := strings.Join(c.Argv, " ")
	if strings.Contains(argv, "pw-Secret") || strings.Contains(argv, "defaults-file") {
		t.Errorf("argv = %s", argv)
	}
	if !strings.HasPrefix(argv, "mariadb-dump --user=app --protocol=SOCKET --single-transaction") || !strings.HasSuffix(argv, "-- shop") {
		t.Errorf("argv = %s", argv)
	}
	if len(c.Env) != 1 || c.Env[0] != "MYSQL_PWD=pw-Secret" {
		t.Errorf("env = %v", c.Env)
	}
	if _, err := New().Validate(ctx, target); err != nil {
		t.Fatal(err)
	}
	if argv := strings.Join(fc.last("mariadb").Argv, " "); !strings.Contains(argv, "--connect-timeout=10") || !strings.Contains(argv, "--database=shop") {
		t.Errorf("check argv = %s", argv)
	}
	if _, err := New().Restore(ctx, target, Format, strings.NewReader(fakeDump)); err != nil {
		t.Fatal(err)
	}
	if c := fc.last("mariadb"); c.Stdin == nil || c.Env[0] != "MYSQL_PWD=pw-Secret" {
		t.Errorf("restore ran %+v", c)
	}
}

func TestExecModeRootPasswordFileAndMySQLTools(t *testing.T) {
	fc := &fakeMariaContainer{mysqlOnly: true, files: map[string]string{"/run/secrets/root": "r00t\n"}}
	ctx := sdk.WithExecutor(context.Background(), fc)
	target := execModeTarget(map[string]string{"MYSQL_ROOT_PASSWORD_FILE": "/run/secrets/root", "MYSQL_USER": "app", "MYSQL_PASSWORD": "x"})
	if _, err := New().Dump(ctx, target, io.Discard); err != nil {
		t.Fatal(err)
	}
	c := fc.last("mysqldump")
	argv := strings.Join(c.Argv, " ")
	if !strings.Contains(argv, "--user=root") || !strings.Contains(argv, "--loose-column-statistics=0") || !strings.Contains(argv, "--all-databases") {
		t.Errorf("argv = %s", argv)
	}
	if c.Env[0] != "MYSQL_PWD=r00t" {
		t.Errorf("env = %v", c.Env)
	}
}

func TestExecModeExplicitConnection(t *testing.T) {
	fc := &fakeMariaContainer{}
	ctx := sdk.WithExecutor(context.Background(), fc)
	target := execModeTarget(nil)
	target.Connection = "mysql://bob:s3cret@127.0.0.1:3307/shop?ssl-mode=DISABLED"
	if _, err := New().Dump(ctx, target, io.Discard); err != nil {
		t.Fatal(err)
	}
	argv := strings.Join(fc.last("mariadb-dump").Argv, " ")
	if !strings.HasPrefix(argv, "mariadb-dump --user=bob --host=127.0.0.1 --port=3307 --protocol=TCP --skip-ssl ") || strings.Contains(argv, "s3cret") {
		t.Errorf("argv = %s", argv)
	}
}

func TestDerivedConnectionErrors(t *testing.T) {
	withEx := sdk.WithExecutor(context.Background(), &fakeMariaContainer{})
	cases := []struct {
		name  string
		ctx   context.Context
		t     sdk.Target
		is    error
		wants []string
	}{
		{"no credentials", withEx, execModeTarget(map[string]string{"MYSQL_RANDOM_ROOT_PASSWORD": "yes"}), sdk.ErrInvalidArgument,
			[]string{"MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD", "MYSQL_USER+MYSQL_PASSWORD", "backup.conn"}},
		{"user without password", withEx, execModeTarget(map[string]string{"MYSQL_USER": "app"}), sdk.ErrInvalidArgument,
			[]string{"no usable credentials"}},
		{"file without an executor", context.Background(), sdk.Target{Options: map[string]string{"host": "10.0.0.3"},
			ContainerEnv: map[string]string{"MARIADB_ROOT_PASSWORD_FILE": "/f"}}, sdk.ErrUnsupported, []string{"MARIADB_ROOT_PASSWORD_FILE", "no exec service"}},
		{"missing file", withEx, execModeTarget(map[string]string{"MARIADB_ROOT_PASSWORD_FILE": "/f"}), nil,
			[]string{"reading MARIADB_ROOT_PASSWORD_FILE", "cat exited with status 1"}},
		{"exec mode without an executor", context.Background(), execModeTarget(map[string]string{"MYSQL_ROOT_PASSWORD": "x"}),
			sdk.ErrUnsupported, []string{"no exec service"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New().Dump(c.ctx, c.t, io.Discard)
			if err == nil || (c.is != nil && !errors.Is(err, c.is)) {
				t.Fatalf("err = %v, want %v", err, c.is)
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestNetworkModeDerivedConnection(t *testing.T) {
	ci, ex, err := New().prepare(context.Background(), sdk.Target{
		Options:      map[string]string{"host": "172.17.0.6"},
		ContainerEnv: map[string]string{"MYSQL_ROOT_PASSWORD": "rootpw", "MYSQL_DATABASE": "shop", "MYSQL_TCP_PORT": "3310"},
	})
	if err != nil || ex != nil {
		t.Fatalf("ex %v err %v", ex, err)
	}
	if ci.user != "root" || ci.password != "rootpw" || ci.database != "shop" || ci.addr() != "172.17.0.6:3310" || ci.socket {
		t.Errorf("ci = %+v", ci)
	}
}

func TestOutputBuffering(t *testing.T) {
	p := New()
	if env := p.outputBuffering(&fakeMariaContainer{}); env != nil {
		t.Errorf("exec mode: %v, want nothing (the tool runs in another container)", env)
	}
	env := p.outputBuffering(nil)
	if _, err := os.Stat(stdbufLib); err != nil {
		if env != nil {
			t.Errorf("no %s here, but env %v", stdbufLib, env)
		}
		return
	}
	if !slices.Equal(env, []string{"LD_PRELOAD=" + stdbufLib, "_STDBUF_O=1048576"}) {
		t.Errorf("env = %v", env)
	}
}
