package itest

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisOptions configures StartRedis.
type RedisOptions struct {
	// Name is the container name; empty means "lbit-redis-<random>".
	Name string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Labels are added to the container (e.g. backup.enabled=true).
	Labels map[string]string
	// Password, if set, is the server's requirepass. It is written to the
	// server's configuration file, never to a command line, unless
	// PasswordOnCommandLine or PasswordEnv says otherwise.
	Password string
	// PasswordOnCommandLine gives the password as "--requirepass PASSWORD"
	// after the configuration file on redis-server's command line (the
	// container's command, as with `command: redis-server --requirepass
	// ...` in compose), instead of writing it to the file.
	PasswordOnCommandLine bool
	// PasswordEnv, when set, names a container variable that holds the
	// password, and the server is started by a shell that passes it on
	// (sh -c 'exec redis-server /data/redis.conf --requirepass "$NAME"'):
	// the password is then nowhere but in that variable, like images whose
	// start script reads it from the environment (Bitnami's REDIS_PASSWORD).
	PasswordEnv string
	// Env is put on the container (docker run -e); values travel to docker
	// by name, never on its command line.
	Env map[string]string
	// RDB, if set, is an RDB file copied into the fresh data directory as
	// dump.rdb before the server starts, so the server loads it: the manual
	// restore of a Redis backup.
	RDB string
}

// Redis is a running Redis server in a container.
type Redis struct {
	Name     string // container name
	ID       string // container ID
	Port     int    // TCP port on 127.0.0.1
	Password string // requirepass; empty for none
	DataDir  string // host directory mounted at /data (dir of the server)
}

// redisReadyTimeout bounds the wait for the server to answer PING.
const redisReadyTimeout = 30 * time.Second

// StartRedis starts redis-server in a labeled container, running as the
// host's redis user, with no save points and no AOF, DEBUG allowed from
// local connections, and repl-diskless-sync-delay 0 (so a replica-style
// dump starts at once instead of after the default 5 s). The container and
// its data are removed when the test ends. It fails the test on any error.
func StartRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	RequireDocker(t)
	rd := lookupUser(t, "redis")

	r := &Redis{Name: opts.Name, Port: opts.Port, Password: opts.Password}
	if r.Name == "" {
		r.Name = "lbit-redis-" + randomHex(4)
	}
	if r.Port == 0 {
		r.Port = FreePort(t)
	}
	removeStale(t, r.Name)
	r.DataDir = dataDir(t, rd)

	conf := []string{
		"port " + strconv.Itoa(r.Port),
		"bind 127.0.0.1",
		"dir /data",
		"dbfilename dump.rdb",
		`save ""`,
		"appendonly no",
		"enable-debug-command local",
		"repl-diskless-sync-delay 0",
	}
	if r.Password != "" && !opts.PasswordOnCommandLine && opts.PasswordEnv == "" {
		conf = append(conf, "requirepass "+quoteRedisConf(r.Password))
	}
	writeOwned(t, filepath.Join(r.DataDir, "redis.conf"), []byte(strings.Join(conf, "\n")+"\n"), rd)
	if opts.RDB != "" {
		raw, err := os.ReadFile(opts.RDB)
		if err != nil {
			t.Fatalf("itest: %v", err)
		}
		writeOwned(t, filepath.Join(r.DataDir, "dump.rdb"), raw, rd)
	}

	server := []string{"redis-server", "/data/redis.conf"}
	env := opts.Env
	switch {
	case opts.PasswordEnv != "":
		env = maps.Clone(env)
		if env == nil {
			env = map[string]string{}
		}
		env[opts.PasswordEnv] = r.Password
		server = []string{"sh", "-c", `exec redis-server /data/redis.conf --requirepass "$` + opts.PasswordEnv + `"`}
	case opts.PasswordOnCommandLine && r.Password != "":
		server = append(server, "--requirepass", r.Password)
	}
	envArgs, dockerEnv := containerEnv(env, nil)
	args := slices.Concat(
		[]string{"run", "--network", "host", "--user", rd.String(), "-v", "/usr:/usr:ro",
			"-v", r.DataDir + ":/data", "-w", "/data", "-d", "--name", r.Name},
		envArgs,
		labelArgs(t, opts.Labels),
		[]string{Image}, server)
	id, err := docker(nil, dockerEnv, args...)
	if err != nil {
		t.Fatalf("itest: starting redis: %v", err)
	}
	r.ID = strings.TrimSpace(id)
	removeOnCleanup(t, r.ID)

	deadline := time.Now().Add(redisReadyTimeout)
	for {
		out, err := r.cli(nil, "PING")
		if err == nil && strings.TrimSpace(out) == "PONG" {
			return r
		}
		running, ierr := docker(nil, nil, "container", "inspect", "--format", "{{.State.Running}}", r.Name)
		if ierr != nil || strings.TrimSpace(running) != "true" {
			logs, _ := docker(nil, nil, "logs", "--tail", "50", r.Name)
			t.Fatalf("itest: container %s stopped before it was ready:\n%s", r.Name, logs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("itest: redis %s not ready after %v: %q %v", r.Name, redisReadyTimeout, out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WriteFile writes content to path inside the container (as the server's
// user), e.g. a secret file for a *_FILE variable.
func (r *Redis) WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if _, err := docker(strings.NewReader(content), nil, "exec", "-i", r.Name, "sh", "-c", `umask 077; cat > "$1"`, "sh", path); err != nil {
		t.Fatalf("itest: writing %s in %s: %v", path, r.Name, err)
	}
}

// writeOwned writes a 0600 file owned by owner.
func writeOwned(t testing.TB, path string, data []byte, owner ids) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("itest: %v", err)
	}
	if err := os.Chown(path, owner.uid, owner.gid); err != nil {
		t.Fatalf("itest: %v", err)
	}
}

// quoteRedisConf quotes a value for redis.conf.
func quoteRedisConf(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// ConnString returns a redis:// URI for database index db on 127.0.0.1,
// authenticating with the password alone when there is one.
func (r *Redis) ConnString(db int) string {
	u := url.URL{Scheme: "redis", Host: "127.0.0.1:" + strconv.Itoa(r.Port), Path: "/" + strconv.Itoa(db)}
	if r.Password != "" {
		u.User = url.UserPassword("", r.Password)
	}
	return u.String()
}

// cli runs redis-cli in the container against the server, with stdin, and
// returns its raw output. The password goes through REDISCLI_AUTH.
func (r *Redis) cli(stdin io.Reader, args ...string) (string, error) {
	a := []string{"exec", "-i"}
	var env []string
	if r.Password != "" {
		a = append(a, "-e", "REDISCLI_AUTH")
		env = []string{"REDISCLI_AUTH=" + r.Password}
	}
	a = append(a, r.Name, "redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "-p", strconv.Itoa(r.Port))
	return docker(stdin, env, append(a, args...)...)
}

// Cmd runs one command and returns redis-cli's raw output (one line per
// reply element), trimmed. An error reply fails the test.
func (r *Redis) Cmd(t testing.TB, args ...string) string {
	t.Helper()
	out, err := r.cli(nil, args...)
	if err != nil {
		t.Fatalf("itest: redis-cli %s on %s: %v", strings.Join(args, " "), r.Name, err)
	}
	out = strings.TrimSpace(out)
	if strings.HasPrefix(out, "ERR") || strings.HasPrefix(out, "WRONGTYPE") || strings.HasPrefix(out, "NOAUTH") {
		t.Fatalf("itest: redis-cli %s on %s: %s", strings.Join(args, " "), r.Name, out)
	}
	return out
}

// Pipe sends commands (binary-safe arguments) in the Redis protocol
// through redis-cli --pipe, and fails the test if any reply is an error.
func (r *Redis) Pipe(t testing.TB, cmds [][]string) {
	t.Helper()
	var b bytes.Buffer
	for _, c := range cmds {
		fmt.Fprintf(&b, "*%d\r\n", len(c))
		for _, a := range c {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	out, err := r.cli(&b, "--pipe")
	if err != nil {
		t.Fatalf("itest: redis-cli --pipe on %s: %v\n%s", r.Name, err, out)
	}
	if !strings.Contains(out, "errors: 0,") {
		t.Fatalf("itest: redis-cli --pipe on %s: %s", r.Name, out)
	}
}
