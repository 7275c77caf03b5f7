package itest

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// StartMariaDBEnv is StartMariaDB with environment variables set on the
// server's container (docker run -e), the way the official images are
// configured: MARIADB_USER, MARIADB_PASSWORD, MARIADB_DATABASE,
// MYSQL_ROOT_PASSWORD, ... The variables only describe the server to Label
// Backup: the accounts are made like StartMariaDB makes them (root without
// a password on the Unix socket; opts.User with opts.Password), so set them
// to match. Values travel to docker by name, never on its command line.
func StartMariaDBEnv(t testing.TB, opts MariaDBOptions, env map[string]string) *MariaDB {
	t.Helper()
	RequireDocker(t)
	my := lookupUser(t, "mysql")

	m := &MariaDB{Name: opts.Name, Port: opts.Port, User: "root"}
	if m.Name == "" {
		m.Name = "lbit-maria-" + randomHex(4)
	}
	if m.Port == 0 {
		m.Port = FreePort(t)
	}
	if opts.Password != "" {
		m.User, m.Password = opts.User, opts.Password
		if m.User == "" {
			m.User = "app"
		}
	}
	removeStale(t, m.Name)
	m.DataDir = dataDir(t, my)

	run := []string{"run", "--network", "host", "--user", my.String(),
		"-v", "/usr:/usr:ro", "-v", m.DataDir + ":/data"}
	Docker(t, slices.Concat(run, []string{"--rm", "--label", LabelKey + "=1", Image,
		"mariadb-install-db", "--no-defaults", "--datadir=/data/db",
		"--auth-root-authentication-method=normal", "--skip-test-db"})...)

	names := make([]string, 0, len(env))
	dockerEnv := make([]string, 0, len(env))
	for k, v := range env {
		names = append(names, k)
		dockerEnv = append(dockerEnv, k+"="+v)
	}
	sort.Strings(names)
	var envArgs []string
	for _, k := range names {
		envArgs = append(envArgs, "-e", k)
	}
	args := slices.Concat(run,
		[]string{"-d", "--name", m.Name,
			"--tmpfs", fmt.Sprintf("/run/mysqld:uid=%d,gid=%d,mode=0755", my.uid, my.gid)},
		envArgs,
		labelArgs(t, opts.Labels),
		[]string{Image, "mariadbd", "--no-defaults", "--datadir=/data/db",
			"--port=" + strconv.Itoa(m.Port), "--bind-address=127.0.0.1",
			"--socket=" + mariaSocket, "--skip-name-resolve",
			"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--skip-log-bin"})
	id, err := docker(nil, dockerEnv, args...)
	if err != nil {
		t.Fatalf("itest: starting mariadb: %v", err)
	}
	m.ID = strings.TrimSpace(id)
	removeOnCleanup(t, m.ID)

	waitReady(t, m.Name, mariaReadyTimeout, "mariadb-admin", "--no-defaults", "-uroot", "--socket="+mariaSocket, "ping")
	if m.Password != "" {
		m.RootSQL(t, "", fmt.Sprintf("CREATE USER %s@'%%' IDENTIFIED BY %s;\nGRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION;",
			quoteMariaString(m.User), quoteMariaString(m.Password), quoteMariaString(m.User)))
	}
	return m
}
