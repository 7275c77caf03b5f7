package itest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// StartPostgresEnv is StartPostgres with environment variables set on the
// server's container (docker run -e), the way the official image is
// configured: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, ... The
// variables only describe the server to Label Backup: the cluster is made
// like StartPostgres makes it (superuser postgres, opts.Password for TCP,
// trust on the Unix socket), so set them to match. PGPORT is set to the
// server's port unless env sets it. Values travel to docker by name, never
// on its command line.
func StartPostgresEnv(t testing.TB, opts PostgresOptions, env map[string]string) *Postgres {
	t.Helper()
	RequireDocker(t)
	pg := lookupUser(t, "postgres")

	p := &Postgres{Name: opts.Name, Port: opts.Port, Password: opts.Password}
	if p.Name == "" {
		p.Name = "lbit-pg-" + randomHex(4)
	}
	if p.Port == 0 {
		p.Port = FreePort(t)
	}
	removeStale(t, p.Name)
	p.DataDir = dataDir(t, pg)

	initdb := []string{"initdb", "-D", "/data/pg", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"}
	if p.Password != "" {
		pwfile := filepath.Join(p.DataDir, "pwfile")
		if err := os.WriteFile(pwfile, []byte(p.Password+"\n"), 0o600); err != nil {
			t.Fatalf("itest: %v", err)
		}
		if err := os.Chown(pwfile, pg.uid, pg.gid); err != nil {
			t.Fatalf("itest: %v", err)
		}
		defer os.Remove(pwfile)
		initdb = append(initdb, "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=/data/pwfile")
	} else {
		initdb = append(initdb, "--auth=trust")
	}
	run := []string{"run", "--network", "host", "--user", pg.String(),
		"-v", "/usr:/usr:ro", "-v", p.DataDir + ":/data"}
	Docker(t, slices.Concat(run, []string{"--rm", "--label", LabelKey + "=1", Image}, initdb)...)

	vars := map[string]string{"PGPORT": strconv.Itoa(p.Port)}
	for k, v := range env {
		vars[k] = v
	}
	names := make([]string, 0, len(vars))
	dockerEnv := make([]string, 0, len(vars))
	for k, v := range vars {
		names = append(names, k)
		dockerEnv = append(dockerEnv, k+"="+v)
	}
	sort.Strings(names)
	var envArgs []string
	for _, k := range names {
		envArgs = append(envArgs, "-e", k) // by name: the value comes from docker's environment
	}

	args := slices.Concat(run,
		[]string{"-d", "--name", p.Name,
			"--tmpfs", fmt.Sprintf("/run/postgresql:uid=%d,gid=%d,mode=0755", pg.uid, pg.gid)},
		envArgs,
		labelArgs(t, opts.Labels),
		[]string{Image, "postgres", "-D", "/data/pg", "-p", strconv.Itoa(p.Port),
			"-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"})
	id, err := docker(nil, dockerEnv, args...)
	if err != nil {
		t.Fatalf("itest: starting postgres: %v", err)
	}
	p.ID = strings.TrimSpace(id)
	removeOnCleanup(t, p.ID)

	waitReady(t, p.Name, pgReadyTimeout, "pg_isready", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port))
	return p
}

// WriteFile writes content to path inside the container (as the server's
// user), e.g. a secret file for a *_FILE variable.
func (p *Postgres) WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if _, err := docker(strings.NewReader(content), nil, "exec", "-i", p.Name, "sh", "-c", `cat > "$1"`, "sh", path); err != nil {
		t.Fatalf("itest: writing %s in %s: %v", path, p.Name, err)
	}
}
