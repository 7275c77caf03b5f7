package e2e

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

// redisZeroLabels are the labels of a Redis container without backup.conn
// under prefix, plus extra pairs.
func redisZeroLabels(prefix string, extra ...string) map[string]string {
	l := map[string]string{
		"backup.enabled": "true",
		"backup.type":    "redis",
		"backup.cron":    "*/2 * * * * *",
		"backup.dest":    "local",
		"backup.prefix":  prefix,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

// newestRedisBackup is the newest complete backup (data file with its
// metadata) of container under root/prefix, or "".
func newestRedisBackup(root, prefix, container string) string {
	matches, _ := filepath.Glob(filepath.Join(root, prefix, container, "redis-*.rdb.gz"))
	for i := len(matches) - 1; i >= 0; i-- {
		if _, err := os.Stat(matches[i] + ".metadata.json"); err == nil {
			return matches[i]
		}
	}
	return ""
}

// checkRedisRestore restores a backup by hand, as the plugin documents:
// gunzip, redis-check-rdb, then a fresh server (requiring password) loads
// the file at start-up and must hold the same dataset as want.
func checkRedisRestore(t *testing.T, file, password, want string) {
	t.Helper()
	rdb := filepath.Join(t.TempDir(), "dump.rdb")
	if out, err := exec.Command("sh", "-c", `gunzip -c "$1" > "$2"`, "sh", file, rdb).CombinedOutput(); err != nil {
		t.Fatalf("gunzip -c %s: %v\n%s", file, err, out)
	}
	if out, err := exec.Command("redis-check-rdb", rdb).CombinedOutput(); err != nil || !strings.Contains(string(out), "RDB looks OK") {
		t.Fatalf("redis-check-rdb %s: %v\n%s", filepath.Base(file), err, out)
	}
	restored := itest.StartRedis(t, itest.RedisOptions{Name: itest.UniqueName("lbe2e-redis-restored"), Password: password, RDB: rdb})
	if got := redisFingerprint(t, restored); got != want {
		t.Errorf("%s: restored dataset differs:\n got  %s\n want %s", filepath.Base(file), got, want)
	}
}

// checkRuns checks that the last run of each named container mentions
// every wanted text, and that no run's error shows a secret.
func checkRuns(t *testing.T, runs map[string]string, wants map[string][]string, secrets ...string) {
	t.Helper()
	for name, ws := range wants {
		for _, w := range ws {
			if !strings.Contains(runs[name], w) {
				t.Errorf("last run of %s = %q, want it to mention %q", name, runs[name], w)
			}
		}
	}
	for n, r := range runs {
		for _, s := range secrets {
			if strings.Contains(r, s) {
				t.Errorf("the error of %s contains a password: %q", n, r)
			}
		}
	}
}

// redisConn is a redis:// URI for user (may be "") and password on
// 127.0.0.1:port.
func redisConn(user, password string, port int) string {
	u := url.URL{Scheme: "redis", Host: "127.0.0.1:" + strconv.Itoa(port), User: url.UserPassword(user, password)}
	return u.String()
}

// TestRedisExecModeZeroConfig: Redis containers labeled backup.mode=exec
// without backup.conn are dumped with redis-cli --rdb run inside them
// through Docker exec, with the password their own command line or their
// REDIS_PASSWORD variable gives the server (and the port from the
// configuration file redis-server is given, read inside the container).
// Each backup passes redis-check-rdb and loads into a fresh server with the
// same dataset. Next to them: a wrong password in backup.conn (refused in
// Validate, redis-cli's AUTH failure reported), an ACL user that may not
// replicate (redis-cli --rdb exits 1: its status and stderr reported), and
// a server requiring a password that its container does not reveal.
func TestRedisExecModeZeroConfig(t *testing.T) {
	requireTools(t, "gunzip", "redis-check-rdb")
	const cmdPassword = "exec-Redis@Cmd:pw"
	const envPassword = "exec-Redis-Env pw"
	const hiddenPassword = "exec-Redis-Hidden-pw"
	const limitedPassword = "exec-Limited-pw"
	const wrongPassword = "exec-Wrong-pw"
	const prefix = "execrd"
	execLabels := func(extra ...string) map[string]string {
		return redisZeroLabels(prefix, append([]string{"backup.mode", "exec"}, extra...)...)
	}

	// Password on redis-server's command line; port in its config file.
	cmdline := itest.StartRedis(t, itest.RedisOptions{Name: "lbe2e-execrd-cmd", Password: cmdPassword,
		PasswordOnCommandLine: true, Labels: execLabels()})
	cmdline.Pipe(t, redisSeed())
	cmdWant := redisFingerprint(t, cmdline)

	// Password only in REDIS_PASSWORD, which a start script passes on, and
	// the port in REDIS_PORT_NUMBER, as with Bitnami's images.
	envPort := itest.FreePort(t)
	env := itest.StartRedis(t, itest.RedisOptions{Name: "lbe2e-execrd-env", Port: envPort, Password: envPassword,
		PasswordEnv: "REDIS_PASSWORD", Env: map[string]string{"REDIS_PORT_NUMBER": strconv.Itoa(envPort)}, Labels: execLabels()})
	env.Pipe(t, redisSeed())
	env.Cmd(t, "SET", "only-here", "env container")
	envWant := redisFingerprint(t, env)

	// backup.conn with a wrong password: Validate's redis-cli is refused.
	wrongPort := itest.FreePort(t)
	wrong := itest.StartRedis(t, itest.RedisOptions{Name: "lbe2e-execrd-wrongpw", Port: wrongPort, Password: cmdPassword,
		Labels: execLabels("backup.conn", redisConn("", wrongPassword, wrongPort))})

	// An ACL user that may PING and INFO but not SYNC: Validate passes,
	// redis-cli --rdb fails.
	limitedPort := itest.FreePort(t)
	limited := itest.StartRedis(t, itest.RedisOptions{Name: "lbe2e-execrd-noperm", Port: limitedPort, Password: cmdPassword,
		Labels: execLabels("backup.conn", redisConn("limited", limitedPassword, limitedPort))})
	limited.Cmd(t, "ACL", "SETUSER", "limited", "on", ">"+limitedPassword, "+ping", "+info")

	// The password is in a variable no image defines, passed on by a
	// shell command line: nothing the plugin may read reveals it.
	hiddenPort := itest.FreePort(t)
	hidden := itest.StartRedis(t, itest.RedisOptions{Name: "lbe2e-execrd-hidden", Port: hiddenPort, Password: hiddenPassword,
		PasswordEnv: "APP_CACHE_SECRET", Env: map[string]string{"REDIS_PORT_NUMBER": strconv.Itoa(hiddenPort)}, Labels: execLabels()})

	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups})
	itest.WaitFor(t, 120*time.Second, "backups of the two zero-config containers and failures of the other three", func() bool {
		runs := execLastRuns(t, agent)
		return newestRedisBackup(backups, prefix, cmdline.Name) != "" && newestRedisBackup(backups, prefix, env.Name) != "" &&
			strings.HasPrefix(runs[wrong.Name], "fail") && strings.HasPrefix(runs[limited.Name], "fail") &&
			strings.HasPrefix(runs[hidden.Name], "fail")
	})
	runs := execLastRuns(t, agent)
	for _, n := range []string{cmdline.Name, env.Name, wrong.Name, limited.Name, hidden.Name} {
		t.Logf("last run of %s: %s", n, runs[n])
	}
	agent.Stop(t)
	secrets := []string{cmdPassword, envPassword, hiddenPassword, limitedPassword, wrongPassword}
	for _, s := range secrets {
		checkNoSecret(t, "agent logs", agent.Logs(), s)
	}
	checkRuns(t, runs, map[string][]string{
		wrong.Name: {"authentication failed", "(inside the container)", "WRONGPASS"},
		limited.Name: {"redis-cli exited with status 1", "SYNC with master failed", "NOPERM",
			"permission denied"},
		hidden.Name: {"requires a password", "no password is discoverable", "REDIS_PASSWORD, REDIS_PASSWORD_FILE",
			"--requirepass in the container's command", "REDISCLI_AUTH", "set the label backup.conn", "NOAUTH"},
	}, secrets...)

	for _, c := range []struct {
		r        *itest.Redis
		pw, want string
	}{{cmdline, cmdPassword, cmdWant}, {env, envPassword, envWant}} {
		file := newestRedisBackup(backups, prefix, c.r.Name)
		raw, err := os.ReadFile(file + ".metadata.json")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{`"database_type": "redis"`, `"dump_format": "redis-rdb"`, `"success": true`} {
			if !strings.Contains(string(raw), w) {
				t.Errorf("%s: metadata lacks %s:\n%s", c.r.Name, w, raw)
			}
		}
		checkRedisRestore(t, file, c.pw, c.want)
	}
}

// TestRedisZeroConfigNetworkMode: Redis containers without backup.conn in
// the default network mode are dumped by the plugin's own client at the
// address the agent reaches them at (the loopback: they use the host's
// network), with a password derived from the container: from redis-server's
// command line (the port from its configuration file, read inside the
// container through Docker exec), or from the file REDIS_PASSWORD_FILE
// names, also read inside the container (its port in REDIS_PORT_NUMBER).
// Each backup restores to the same dataset. A server whose password its container does not reveal fails
// clearly.
func TestRedisZeroConfigNetworkMode(t *testing.T) {
	requireTools(t, "gunzip", "redis-check-rdb")
	const cmdPassword = "net-Redis@Cmd:pw"
	const filePassword = "net-Redis-File-pw"
	const hiddenPassword = "net-Redis-Hidden-pw"
	const prefix = "netrd"

	cmdline := itest.StartRedis(t, itest.RedisOptions{Name: "lbe2e-netrd-cmd", Password: cmdPassword,
		PasswordOnCommandLine: true, Labels: redisZeroLabels(prefix)})
	cmdline.Pipe(t, redisSeed())
	cmdWant := redisFingerprint(t, cmdline)

	// The server's password is in a variable no image defines; the file
	// REDIS_PASSWORD_FILE names holds it too, and only that is read.
	filePort := itest.FreePort(t)
	fromFile := itest.StartRedis(t, itest.RedisOptions{Name: "lbe2e-netrd-file", Port: filePort, Password: filePassword,
		PasswordEnv: "APP_CACHE_SECRET",
		Env:         map[string]string{"REDIS_PASSWORD_FILE": "/data/secret-pw", "REDIS_PORT_NUMBER": strconv.Itoa(filePort)},
		Labels:      redisZeroLabels(prefix)})
	fromFile.WriteFile(t, "/data/secret-pw", filePassword+"\n")
	fromFile.Pipe(t, redisSeed())
	fileWant := redisFingerprint(t, fromFile)

	hiddenPort := itest.FreePort(t)
	hidden := itest.StartRedis(t, itest.RedisOptions{Name: "lbe2e-netrd-hidden", Port: hiddenPort, Password: hiddenPassword,
		PasswordEnv: "APP_CACHE_SECRET", Env: map[string]string{"REDIS_PORT_NUMBER": strconv.Itoa(hiddenPort)},
		Labels: redisZeroLabels(prefix)})

	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups})
	itest.WaitFor(t, 120*time.Second, "backups of the two containers with credentials and a failure of the third", func() bool {
		return newestRedisBackup(backups, prefix, cmdline.Name) != "" && newestRedisBackup(backups, prefix, fromFile.Name) != "" &&
			strings.HasPrefix(execLastRuns(t, agent)[hidden.Name], "fail")
	})
	runs := execLastRuns(t, agent)
	for _, n := range []string{cmdline.Name, fromFile.Name, hidden.Name} {
		t.Logf("last run of %s: %s", n, runs[n])
	}
	agent.Stop(t)
	secrets := []string{cmdPassword, filePassword, hiddenPassword}
	for _, s := range secrets {
		checkNoSecret(t, "agent logs", agent.Logs(), s)
	}
	checkRuns(t, runs, map[string][]string{
		hidden.Name: {"no password is discoverable", "REDIS_PASSWORD_FILE", "backup.conn", "NOAUTH"},
	}, secrets...)
	if strings.Contains(runs[hidden.Name], "(inside the container)") {
		t.Errorf("a network-mode run says it ran inside the container: %q", runs[hidden.Name])
	}

	checkRedisRestore(t, newestRedisBackup(backups, prefix, cmdline.Name), cmdPassword, cmdWant)
	checkRedisRestore(t, newestRedisBackup(backups, prefix, fromFile.Name), filePassword, fileWant)
}
