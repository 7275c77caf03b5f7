package itest

import (
	"sort"
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
	opts.Env = env
	return StartPostgres(t, opts)
}

// containerEnv turns env (over defaults, when env is set at all) into
// "-e NAME" arguments and the NAME=value list docker itself gets, so values
// never appear in a command line.
func containerEnv(env, defaults map[string]string) (args, dockerEnv []string) {
	if env == nil {
		return nil, nil
	}
	vars := map[string]string{}
	for k, v := range defaults {
		vars[k] = v
	}
	for k, v := range env {
		vars[k] = v
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		args = append(args, "-e", k)
		dockerEnv = append(dockerEnv, k+"="+vars[k])
	}
	return args, dockerEnv
}

// WriteFile writes content to path inside the container (as the server's
// user), e.g. a secret file for a *_FILE variable.
func (p *Postgres) WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if _, err := docker(strings.NewReader(content), nil, "exec", "-i", p.Name, "sh", "-c", `cat > "$1"`, "sh", path); err != nil {
		t.Fatalf("itest: writing %s in %s: %v", path, p.Name, err)
	}
}
