package postgres

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

// fakeContainer is an sdk.Executor standing in for the host's Docker exec.
type fakeContainer struct {
	mu    sync.Mutex
	cmds  []sdk.Command
	files map[string]string
}

func (f *fakeContainer) Run(_ context.Context, c sdk.Command) (sdk.ExecResult, error) {
	f.mu.Lock()
	f.cmds = append(f.cmds, c)
	f.mu.Unlock()
	out := c.Stdout
	if out == nil {
		out = io.Discard
	}
	var n int
	switch c.Argv[0] {
	case "psql":
		n, _ = io.WriteString(out, "15.18\n")
	case "pg_dump":
		n, _ = io.WriteString(out, "PGDMP-fake")
	case "pg_restore":
		b, _ := io.ReadAll(c.Stdin)
		if string(b) != "PGDMP-fake" {
			return sdk.ExecResult{}, &sdk.ExitError{Tool: "pg_restore", ExitCode: 1, Stderr: "bad input"}
		}
	case "cat":
		content, ok := f.files[c.Argv[len(c.Argv)-1]]
		if !ok {
			return sdk.ExecResult{}, &sdk.ExitError{Tool: "cat", ExitCode: 1, Stderr: "cat: No such file or directory"}
		}
		n, _ = io.WriteString(out, content)
	}
	return sdk.ExecResult{StdoutBytes: int64(n)}, nil
}

func (f *fakeContainer) find(tool string) sdk.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.cmds {
		if c.Argv[0] == tool {
			return c
		}
	}
	return sdk.Command{}
}

func execTarget(env map[string]string) sdk.Target {
	return sdk.Target{Options: map[string]string{sdk.OptionMode: sdk.ModeExec}, ContainerEnv: env,
		Container: sdk.ContainerRef{ID: "abc", Name: "db"}}
}

func TestExecModeZeroConfigDump(t *testing.T) {
	fc := &fakeContainer{}
	ctx := sdk.WithExecutor(context.Background(), fc)
	p := New()
	target := execTarget(map[string]string{"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "pw-Secret", "POSTGRES_DB": "shop", "PGPORT": "6543"})
	var out bytes.Buffer
	res, err := p.Dump(ctx, target, &out)
	if err != nil || out.String() != "PGDMP-fake" || res.Format != FormatCustom {
		t.Fatalf("res %+v out %q err %v", res, out.String(), err)
	}
	c := fc.find("pg_dump")
	argv := strings.Join(c.Argv, " ")
	if strings.Contains(argv, "pw-Secret") {
		t.Errorf("the password is in argv: %s", argv)
	}
	if !strings.Contains(argv, "--dbname=postgresql://app@/shop?") || !strings.Contains(argv, "host=%2Fvar%2Frun%2Fpostgresql") ||
		!strings.Contains(argv, "port=6543") {
		t.Errorf("argv = %s", argv)
	}
	if !contains(c.Env, "PGPASSWORD=pw-Secret") || !contains(c.Secrets, "pw-Secret") {
		t.Errorf("env %v secrets %v", c.Env, c.Secrets)
	}

	if _, err := p.Validate(ctx, target); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Restore(ctx, target, FormatCustom, strings.NewReader("PGDMP-fake")); err != nil {
		t.Fatal(err)
	}
}

// In network mode the host still offers its executor when the connection
// is derived, so that secret files inside the container can be read; the
// dump tools stay local and connect to the container's address.
func TestNetworkModePasswordFile(t *testing.T) {
	fc := &fakeContainer{files: map[string]string{"/run/secrets/pg": "file-pw\n"}}
	ctx := sdk.WithExecutor(context.Background(), fc)
	target := sdk.Target{Options: map[string]string{"host": "10.0.0.2"},
		ContainerEnv: map[string]string{"POSTGRES_PASSWORD_FILE": "/run/secrets/pg", "POSTGRES_USER": "app"}}
	ci, ex, err := New().prepare(ctx, target)
	if err != nil || ex != nil {
		t.Fatalf("ex %v err %v", ex, err)
	}
	if ci.password != "file-pw" || ci.hosts[0] != "10.0.0.2:5432" || ci.database != "app" {
		t.Fatalf("derived %+v", ci)
	}
}

func TestExecModePasswordFile(t *testing.T) {
	fc := &fakeContainer{files: map[string]string{"/run/secrets/pg": "from-file-pw\n"}}
	ctx := sdk.WithExecutor(context.Background(), fc)
	target := execTarget(map[string]string{"POSTGRES_PASSWORD_FILE": "/run/secrets/pg"})
	if _, err := New().Dump(ctx, target, io.Discard); err != nil {
		t.Fatal(err)
	}
	if c := fc.find("pg_dump"); !contains(c.Env, "PGPASSWORD=from-file-pw") || !strings.Contains(strings.Join(c.Argv, " "), "postgresql://postgres@/postgres?") {
		t.Errorf("pg_dump ran with %+v", c)
	}
	if c := fc.find("cat"); strings.Join(c.Argv, " ") != "cat -- /run/secrets/pg" {
		t.Errorf("cat argv %v", c.Argv)
	}

	target = execTarget(map[string]string{"POSTGRES_PASSWORD_FILE": "/missing"})
	_, err := New().Dump(ctx, target, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "POSTGRES_PASSWORD_FILE") || !strings.Contains(err.Error(), "cat exited with status 1") {
		t.Fatalf("err = %v", err)
	}
}

func TestDerivedConnectionErrors(t *testing.T) {
	fc := &fakeContainer{}
	withEx := sdk.WithExecutor(context.Background(), fc)
	cases := []struct {
		name  string
		ctx   context.Context
		t     sdk.Target
		is    error
		wants []string
	}{
		{"no credentials", withEx, execTarget(map[string]string{"PATH": "/usr/bin"}), sdk.ErrInvalidArgument,
			[]string{"POSTGRES_PASSWORD", "POSTGRES_PASSWORD_FILE", "backup.conn"}},
		{"both forms", withEx, execTarget(map[string]string{"POSTGRES_PASSWORD": "a", "POSTGRES_PASSWORD_FILE": "/f"}), sdk.ErrInvalidArgument,
			[]string{"both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE"}},
		{"file without an executor", context.Background(), sdk.Target{Options: map[string]string{"host": "10.0.0.2"},
			ContainerEnv: map[string]string{"POSTGRES_PASSWORD_FILE": "/f"}}, sdk.ErrUnsupported, []string{"POSTGRES_PASSWORD_FILE", "no exec service"}},
		{"network mode without an address", context.Background(), sdk.Target{ContainerEnv: map[string]string{"POSTGRES_PASSWORD": "x"}},
			sdk.ErrInvalidArgument, []string{"container's address"}},
		{"exec mode without an executor", context.Background(), execTarget(map[string]string{"POSTGRES_PASSWORD": "x"}),
			sdk.ErrUnsupported, []string{"no exec service"}},
		{"unknown mode", withEx, sdk.Target{Options: map[string]string{"mode": "ssh"}}, sdk.ErrInvalidArgument, []string{`"ssh"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New().Dump(c.ctx, c.t, io.Discard)
			if !errors.Is(err, c.is) {
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
		Options:      map[string]string{"host": "172.17.0.5"},
		ContainerEnv: map[string]string{"POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p@ss/word", "PGPORT": "5433"},
	})
	if err != nil || ex != nil {
		t.Fatalf("ex %v err %v", ex, err)
	}
	if ci.password != "p@ss/word" || ci.user != "u" || ci.database != "u" || ci.hostList() != "172.17.0.5:5433" || strings.Contains(ci.uri, "p@ss") {
		t.Errorf("ci = %+v", ci)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
