package itest

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MariaDBOptions configures StartMariaDB.
type MariaDBOptions struct {
	// Name is the container name; empty means "lbit-maria-<random>".
	Name string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Labels are added to the container (e.g. backup.enabled=true).
	Labels map[string]string
	// User and Password, when Password is set, create an account
	// User@'%' (User defaults to "app") with every privilege, for TCP
	// connections. root keeps logging in without a password, but only
	// through the Unix socket inside the container (the server runs with
	// --skip-name-resolve, so root@localhost does not match TCP clients).
	User, Password string
	// Env, when set, is put on the server's container (docker run -e), the
	// way the official images are configured (MARIADB_USER, ...). Values
	// reach docker by name only, never on its command line.
	Env map[string]string
}

// MariaDB is a running MariaDB server in a container.
type MariaDB struct {
	Name     string // container name
	ID       string // container ID
	Port     int    // TCP port on 127.0.0.1
	User     string // TCP account ("root" when no password was asked for)
	Password string // its password; empty for root without a password
	DataDir  string // host directory mounted at /data; the datadir is /data/db
}

// mariaReadyTimeout bounds the wait for the server to accept connections.
const mariaReadyTimeout = 30 * time.Second

// mariaSocket is the server's Unix socket inside the container.
const mariaSocket = "/run/mysqld/mysqld.sock"

// StartMariaDB initializes a fresh data directory and starts MariaDB in a
// labeled container, running as the host's mysql user. The container and
// its data are removed when the test ends. It fails the test on any error.
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
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

	envArgs, dockerEnv := containerEnv(opts.Env, nil)
	args := slices.Concat(run,
		[]string{"-d", "--name", m.Name,
			"--tmpfs", fmt.Sprintf("/run/mysqld:uid=%d,gid=%d,mode=0755", my.uid, my.gid)},
		envArgs,
		labelArgs(t, opts.Labels),
		[]string{Image, "mariadbd", "--no-defaults", "--datadir=/data/db",
			"--port=" + strconv.Itoa(m.Port), "--bind-address=127.0.0.1",
			"--socket=" + mariaSocket, "--skip-name-resolve",
			// Test data is disposable: skip the fsyncs.
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

// ConnString returns a mysql:// URI for database db (may be empty) over TCP
// on 127.0.0.1, as the plugin's backup.conn expects it.
func (m *MariaDB) ConnString(db string) string {
	u := url.URL{Scheme: "mysql", User: url.User(m.User), Host: "127.0.0.1:" + strconv.Itoa(m.Port), Path: "/" + db}
	if m.Password != "" {
		u.User = url.UserPassword(m.User, m.Password)
	}
	return u.String()
}

// SQL runs sql in database db (empty: none selected) over TCP as the
// account of ConnString, so authentication applies, and returns the
// trimmed, tab-separated output without column names. It fails the test on
// any SQL error.
func (m *MariaDB) SQL(t testing.TB, db, sql string) string {
	t.Helper()
	args := []string{"exec", "-i"}
	var env []string
	if m.Password != "" {
		// Passed by name: the value stays out of the docker command line.
		args = append(args, "-e", "MYSQL_PWD")
		env = []string{"MYSQL_PWD=" + m.Password}
	}
	args = append(args, m.Name, "mariadb", "--no-defaults", "--batch", "--skip-column-names",
		"--default-character-set=utf8mb4", "--protocol=TCP", "-h127.0.0.1", "-P"+strconv.Itoa(m.Port), "-u"+m.User)
	if db != "" {
		args = append(args, "--database="+db)
	}
	out, err := docker(strings.NewReader(sql), env, args...)
	if err != nil {
		t.Fatalf("itest: mariadb on %s/%s: %v", m.Name, db, err)
	}
	return strings.TrimSpace(out)
}

// RootSQL is SQL as root through the Unix socket inside the container.
func (m *MariaDB) RootSQL(t testing.TB, db, sql string) string {
	t.Helper()
	args := []string{"exec", "-i", m.Name, "mariadb", "--no-defaults", "--batch", "--skip-column-names",
		"--default-character-set=utf8mb4", "-uroot", "--socket=" + mariaSocket}
	if db != "" {
		args = append(args, "--database="+db)
	}
	out, err := docker(strings.NewReader(sql), nil, args...)
	if err != nil {
		t.Fatalf("itest: mariadb (root) on %s/%s: %v", m.Name, db, err)
	}
	return strings.TrimSpace(out)
}

// CreateDatabase creates database name with the utf8mb4 character set.
func (m *MariaDB) CreateDatabase(t testing.TB, name string) {
	t.Helper()
	m.SQL(t, "", "CREATE DATABASE "+quoteMariaIdent(name)+" CHARACTER SET utf8mb4")
}

// quoteMariaIdent quotes a MariaDB identifier.
func quoteMariaIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// quoteMariaString quotes a MariaDB string literal.
func quoteMariaString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}
