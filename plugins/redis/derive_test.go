package redis

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

func TestDeriveConn(t *testing.T) {
	files := map[string]string{
		"/run/secrets/redis": "file-pw\n",
		"/usr/local/etc/redis/redis.conf": `# a comment
port 6400
requirepass "conf pw \"quoted\" \x41"
bind 10.1.2.3 -::1
`,
		"/etc/redis/plain.conf": "REQUIREPASS  simple-pw\nport 6500\n",
		"/etc/redis/empty.conf": "",
		"/etc/redis/bind.conf":  "bind 10.9.8.7\nport 6501\n",
	}
	cases := []struct {
		name string
		exec bool
		env  map[string]string
		cmd  []string
		db   string
		// want
		host, user, password, from string
		port, dbIdx                int
	}{
		{name: "nothing: the defaults, no password", exec: true,
			cmd: []string{"docker-entrypoint.sh", "redis-server"}, host: "127.0.0.1", port: 6379},
		{name: "REDIS_PASSWORD", exec: true, env: map[string]string{"REDIS_PASSWORD": "env-pw", "REDIS_PORT_NUMBER": "6380"},
			cmd: []string{"/opt/bitnami/scripts/redis/run.sh"}, host: "127.0.0.1", port: 6380, password: "env-pw", from: "REDIS_PASSWORD"},
		{name: "REDIS_PASSWORD_FILE and REDIS_USERNAME", exec: true,
			env:  map[string]string{"REDIS_PASSWORD_FILE": "/run/secrets/redis", "REDIS_USERNAME": "backup"},
			host: "127.0.0.1", port: 6379, user: "backup", password: "file-pw", from: "the file REDIS_PASSWORD_FILE names"},
		{name: "the environment before the command line", exec: true, env: map[string]string{"REDIS_PASSWORD": "env-pw"},
			cmd: []string{"redis-server", "--requirepass", "cmd-pw"}, host: "127.0.0.1", port: 6379, password: "env-pw", from: "REDIS_PASSWORD"},
		{name: "an empty REDIS_PASSWORD is none", exec: true, env: map[string]string{"REDIS_PASSWORD": ""},
			cmd: []string{"redis-server", "--requirepass", "cmd-pw"}, host: "127.0.0.1", port: 6379, password: "cmd-pw", from: srcCmdline},
		{name: "--requirepass and --port", exec: true,
			cmd:  []string{"docker-entrypoint.sh", "redis-server", "--save", "60", "1", "--requirepass", "cmd pw", "--port", "7000", "--appendonly", "yes"},
			host: "127.0.0.1", port: 7000, password: "cmd pw", from: srcCmdline},
		{name: "the official entrypoint without redis-server", exec: true,
			cmd:  []string{"docker-entrypoint.sh", "--requirepass", "ep-pw", "--PORT", "7001"},
			host: "127.0.0.1", port: 7001, password: "ep-pw", from: srcCmdline},
		{name: "the last --requirepass wins", exec: true, cmd: []string{"/usr/bin/redis-server", "--requirepass", "a", "--requirepass", "b"},
			host: "127.0.0.1", port: 6379, password: "b", from: srcCmdline},
		{name: "configuration file", exec: true,
			cmd:  []string{"docker-entrypoint.sh", "redis-server", "/usr/local/etc/redis/redis.conf"},
			host: "::1", port: 6400, password: `conf pw "quoted" A`, from: "requirepass in /usr/local/etc/redis/redis.conf"},
		{name: "the command line overrides the file", exec: true,
			cmd:  []string{"redis-server", "/etc/redis/plain.conf", "--requirepass", "cmd-pw", "--port", "6600"},
			host: "127.0.0.1", port: 6600, password: "cmd-pw", from: srcCmdline},
		{name: "an empty --requirepass overrides the file", exec: true,
			cmd:  []string{"redis-server", "/etc/redis/plain.conf", "--requirepass", ""},
			host: "127.0.0.1", port: 6500},
		{name: "file with upper-case directives", exec: true, cmd: []string{"redis-server", "/etc/redis/plain.conf"},
			host: "127.0.0.1", port: 6500, password: "simple-pw", from: "requirepass in /etc/redis/plain.conf"},
		{name: "empty file", exec: true, cmd: []string{"redis-server", "/etc/redis/empty.conf"}, host: "127.0.0.1", port: 6379},
		{name: "unreadable file: best effort", exec: true, env: map[string]string{"REDIS_PASSWORD": "env-pw"},
			cmd: []string{"redis-server", "/missing.conf"}, host: "127.0.0.1", port: 6379, password: "env-pw", from: "REDIS_PASSWORD"},
		{name: "a server bound to one address", exec: true, cmd: []string{"redis-server", "/etc/redis/bind.conf"},
			host: "10.9.8.7", port: 6501},
		{name: "--bind overrides the file", exec: true, cmd: []string{"redis-server", "/etc/redis/bind.conf", "--bind", "0.0.0.0"},
			host: "127.0.0.1", port: 6501},
		{name: "network mode: the container's address", env: map[string]string{"REDIS_PASSWORD": "env-pw"},
			cmd: []string{"redis-server", "--port", "7002", "--bind", "10.9.8.7"}, db: "4",
			host: "172.18.0.5", port: 7002, password: "env-pw", from: "REDIS_PASSWORD", dbIdx: 4},
		{name: "network mode reads the file through the executor", cmd: []string{"redis-server", "/usr/local/etc/redis/redis.conf"},
			host: "172.18.0.5", port: 6400, password: `conf pw "quoted" A`, from: "requirepass in /usr/local/etc/redis/redis.conf"},
		{name: "REDISCLI_AUTH, last", exec: true, env: map[string]string{"REDISCLI_AUTH": "cli-pw"},
			cmd: []string{"redis-server", "/etc/redis/empty.conf"}, host: "127.0.0.1", port: 6379, password: "cli-pw", from: "REDISCLI_AUTH"},
		{name: "REDISCLI_AUTH after the file", exec: true, env: map[string]string{"REDISCLI_AUTH": "cli-pw"},
			cmd: []string{"redis-server", "/etc/redis/plain.conf"}, host: "127.0.0.1", port: 6500, password: "simple-pw", from: "requirepass in /etc/redis/plain.conf"},
		{name: "a shell command line is not parsed", exec: true, cmd: []string{"sh", "-c", "redis-server --requirepass x"},
			host: "127.0.0.1", port: 6379},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fc := &fakeContainer{files: files}
			ctx := sdk.WithExecutor(context.Background(), fc)
			target := sdk.Target{ContainerEnv: c.env, ContainerCommand: c.cmd, Database: c.db,
				Options: map[string]string{"host": "172.18.0.5"}}
			if c.exec {
				target.Options = map[string]string{sdk.OptionMode: sdk.ModeExec}
			}
			ci, ex, err := New().prepare(ctx, target)
			if err != nil {
				t.Fatal(err)
			}
			if (ex != nil) != c.exec || ci.inContainer != c.exec {
				t.Errorf("executor %v, in container %v; want exec %v", ex, ci.inContainer, c.exec)
			}
			if ci.host != c.host || ci.port != c.port || ci.user != c.user || ci.password != c.password ||
				ci.hasAuth != (c.password != "") || ci.db != c.dbIdx || ci.dbGiven != (c.db != "") {
				t.Errorf("derived %s:%d user %q password %q (auth %v) db %d (%v)", ci.host, ci.port, ci.user, ci.password, ci.hasAuth, ci.db, ci.dbGiven)
			}
			if ci.derived == nil || ci.derived.passwordFrom != c.from {
				t.Errorf("derivation %+v, want the password from %q", ci.derived, c.from)
			}
			if c.password != "" && !slices.Contains(ci.secrets, c.password) {
				t.Errorf("the password is not among the secrets to scrub")
			}
		})
	}
}

func TestDeriveConnErrors(t *testing.T) {
	withEx := sdk.WithExecutor(context.Background(), &fakeContainer{})
	execOpts := map[string]string{sdk.OptionMode: sdk.ModeExec}
	cases := []struct {
		name  string
		ctx   context.Context
		t     sdk.Target
		is    error
		wants []string
	}{
		{"both forms", withEx, sdk.Target{Options: execOpts, ContainerEnv: map[string]string{"REDIS_PASSWORD": "a", "REDIS_PASSWORD_FILE": "/f"}},
			sdk.ErrInvalidArgument, []string{"both REDIS_PASSWORD and REDIS_PASSWORD_FILE"}},
		{"missing file", withEx, sdk.Target{Options: execOpts, ContainerEnv: map[string]string{"REDIS_PASSWORD_FILE": "/run/secrets/nope"}},
			nil, []string{"REDIS_PASSWORD_FILE", "cat exited with status 1", "/run/secrets/nope"}},
		{"file without an executor", context.Background(), sdk.Target{Options: map[string]string{"host": "10.0.0.2"},
			ContainerEnv: map[string]string{"REDIS_PASSWORD_FILE": "/f"}}, sdk.ErrUnsupported, []string{"REDIS_PASSWORD_FILE", "no exec service"}},
		{"user without a password", withEx, sdk.Target{Options: execOpts, ContainerEnv: map[string]string{"REDIS_USERNAME": "app"}},
			sdk.ErrInvalidArgument, []string{"REDIS_USERNAME", "no password", "REDIS_PASSWORD_FILE", "backup.conn"}},
		{"port 0", withEx, sdk.Target{Options: execOpts, ContainerCommand: []string{"redis-server", "--port", "0", "--tls-port", "6379"}},
			sdk.ErrInvalidArgument, []string{"no plain TCP port", "--port in the container's command is 0", "backup.conn"}},
		{"bad port", withEx, sdk.Target{Options: execOpts, ContainerEnv: map[string]string{"REDIS_PORT_NUMBER": "http"}},
			sdk.ErrInvalidArgument, []string{"REDIS_PORT_NUMBER is not a port number"}},
		{"network mode without an address", withEx, sdk.Target{ContainerEnv: map[string]string{"REDIS_PASSWORD": "x"}},
			sdk.ErrInvalidArgument, []string{"container's address", "backup.mode=exec"}},
		{"bad database", withEx, sdk.Target{Options: execOpts, Database: "cache"},
			sdk.ErrInvalidArgument, []string{`invalid database "cache"`}},
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

// A derived connection that the server refuses says where its password
// came from, or which sources were looked at when none was found.
func TestDerivedAuthFailures(t *testing.T) {
	srv := cliServer{password: "server-pw", dbs: 16, version: "7.0.15", mode: "standalone"}
	cases := []struct {
		name  string
		env   map[string]string
		cmd   []string
		wants []string
	}{
		{"nothing discoverable", nil, []string{"docker-entrypoint.sh", "redis-server", "/etc/redis.conf"},
			[]string{"requires a password", "no password is discoverable", "REDIS_PASSWORD, REDIS_PASSWORD_FILE, --requirepass in the container's command",
				"requirepass in /etc/redis.conf (unreadable: cat exited with status 1", "REDISCLI_AUTH", "set the label backup.conn", "NOAUTH"}},
		{"stale REDIS_PASSWORD", map[string]string{"REDIS_PASSWORD": "old-pw"}, nil,
			[]string{"refused the password taken from REDIS_PASSWORD", "WRONGPASS"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, exec := range []bool{true, false} {
				var err error
				target := sdk.Target{ContainerEnv: c.env, ContainerCommand: c.cmd, Options: map[string]string{sdk.OptionMode: sdk.ModeExec}}
				if exec {
					fc := &fakeContainer{run: srv.run}
					_, err = New().Validate(sdk.WithExecutor(context.Background(), fc), target)
				} else {
					// The plugin's own client against a scripted server.
					f := newFakeServer(t, with(map[string]string{"PING": "-NOAUTH Authentication required.\r\n",
						"AUTH": "-WRONGPASS invalid username-password pair or user is disabled.\r\n"}))
					host, port, _ := strings.Cut(f.addr, ":")
					target.Options = map[string]string{"host": host}
					target.ContainerCommand = append(slices.Clone(c.cmd), "--port", port)
					if c.cmd == nil {
						target.ContainerCommand = []string{"redis-server", "--port", port}
					}
					_, err = New().Validate(sdk.WithExecutor(context.Background(), &fakeContainer{}), target)
				}
				if !errors.Is(err, sdk.ErrUnauthenticated) {
					t.Fatalf("exec %v: err = %v, want ErrUnauthenticated", exec, err)
				}
				for _, w := range c.wants {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("exec %v: err = %q, want it to mention %q", exec, err, w)
					}
				}
				if strings.Contains(err.Error(), "old-pw") {
					t.Errorf("the error shows the password: %v", err)
				}
			}
		})
	}
}

func TestParseServerCommand(t *testing.T) {
	pw := func(s string) *string { return &s }
	cases := []struct {
		cmd  []string
		want serverCommand
	}{
		{nil, serverCommand{}},
		{[]string{"redis-server"}, serverCommand{found: true}},
		{[]string{"redis-server", "-"}, serverCommand{found: true}},
		{[]string{"redis-server", "/r.conf", "--port", "1", "--bind", "a", "b", "--requirepass"},
			serverCommand{found: true, configFile: "/r.conf", port: "1", bind: []string{"a", "b"}, requirepass: pw("")}},
		{[]string{"docker-entrypoint.sh", "/r.conf"}, serverCommand{found: true, configFile: "/r.conf"}},
		{[]string{"docker-entrypoint.sh", "sh", "-c", "x"}, serverCommand{}},
		{[]string{"tini", "--", "/usr/bin/redis-server", "--requirepass", "p"}, serverCommand{found: true, requirepass: pw("p")}},
	}
	for _, c := range cases {
		got := parseServerCommand(c.cmd)
		if got.found != c.want.found || got.configFile != c.want.configFile || got.port != c.want.port ||
			!slices.Equal(got.bind, c.want.bind) || (got.requirepass == nil) != (c.want.requirepass == nil) ||
			(got.requirepass != nil && *got.requirepass != *c.want.requirepass) {
			t.Errorf("parseServerCommand(%q) = %+v, want %+v", c.cmd, got, c.want)
		}
	}
}

func TestSplitConfigArgs(t *testing.T) {
	cases := []struct {
		line string
		want []string // nil: refused
	}{
		{"requirepass simple", []string{"requirepass", "simple"}},
		{"  requirepass \t  spaced  ", []string{"requirepass", "spaced"}},
		{`requirepass "a b\"c\\d\n\x41\x4g"`, []string{"requirepass", "a b\"c\\d\nAx4g"}},
		{`requirepass 'it\'s "raw" \n'`, []string{"requirepass", `it's "raw" \n`}},
		{`requirepass pre"quoted part"`, []string{"requirepass", "prequoted part"}},
		{`requirepass ""`, []string{"requirepass", ""}},
		{`requirepass "unterminated`, nil},
		{`requirepass "closed"too-early`, nil},
		{`requirepass 'a'b`, nil},
		{`save ""  ""`, []string{"save", "", ""}},
	}
	for _, c := range cases {
		got, ok := splitConfigArgs(c.line)
		if ok != (c.want != nil) || !slices.Equal(got, c.want) {
			t.Errorf("splitConfigArgs(%q) = %q, %v; want %q", c.line, got, ok, c.want)
		}
	}
}

func TestLoopbackFor(t *testing.T) {
	for _, c := range []struct {
		binds []string
		want  string
	}{
		{nil, "127.0.0.1"},
		{[]string{"*", "-::*"}, "127.0.0.1"},
		{[]string{"10.0.0.1", "127.0.0.1"}, "127.0.0.1"},
		{[]string{"-::1"}, "::1"},
		{[]string{"-10.0.0.7", "10.0.0.8"}, "10.0.0.7"},
		{[]string{"redis.local"}, "127.0.0.1"},
	} {
		if got := loopbackFor(c.binds); got != c.want {
			t.Errorf("loopbackFor(%q) = %q, want %q", c.binds, got, c.want)
		}
	}
}
