package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

// TestZeroConfigNetworkMode: containers labeled without backup.conn and in
// the default network mode are backed up with credentials derived from
// their own environment, the way the official images define it, and with
// the address the agent reaches them at (here the loopback: they use the
// host's network). The dump tools run in the agent, not in the containers.
// Each backup is restored and compared:
//   - PostgreSQL from POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB over TCP
//     with scram authentication (so the derived password is really used);
//   - PostgreSQL whose password is in POSTGRES_PASSWORD_FILE, a file only
//     inside the container (read there through Docker exec);
//   - MariaDB from MARIADB_USER/MARIADB_PASSWORD/MARIADB_DATABASE;
//   - MongoDB (FerretDB) from MONGO_INITDB_ROOT_USERNAME/PASSWORD, restored
//     with `label-backup restore` deriving the connection the same way.
//
// A FerretDB that requires a login but whose container names no
// credentials fails with an error that says so.
func TestZeroConfigNetworkMode(t *testing.T) {
	const pgPassword = "zero-Pg-Secret"
	const filePassword = "zero-File-Secret"
	const myPassword = "zero-My-Secret"
	const mongoPassword = "zero-Mongo@Secret"
	labels := func(typ string, extra ...string) map[string]string {
		l := map[string]string{
			"backup.enabled": "true",
			"backup.type":    typ,
			"backup.cron":    "*/2 * * * * *",
			"backup.prefix":  "zero",
		}
		for i := 0; i < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}

	pg := itest.StartPostgresEnv(t, itest.PostgresOptions{Name: "lbe2e-zero-pg", Password: pgPassword, Labels: labels("postgres")},
		map[string]string{"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": pgPassword, "POSTGRES_DB": "app"})
	pg.CreateDatabase(t, "app")
	pg.Psql(t, "app", seedSQL)
	pgWant := pg.Psql(t, "app", fingerprintSQL)

	pgFile := itest.StartPostgresEnv(t, itest.PostgresOptions{Name: "lbe2e-zero-pgfile", Password: filePassword, Labels: labels("postgres")},
		map[string]string{"POSTGRES_PASSWORD_FILE": "/tmp/pw", "POSTGRES_DB": "app"})
	pgFile.WriteFile(t, "/tmp/pw", filePassword+"\n")
	pgFile.CreateDatabase(t, "app")
	pgFile.Psql(t, "app", "CREATE TABLE t (x int); INSERT INTO t VALUES (42);")

	myPort := itest.FreePort(t)
	my := itest.StartMariaDBEnv(t, itest.MariaDBOptions{Name: "lbe2e-zero-my", Port: myPort, User: "app", Password: myPassword, Labels: labels("mysql")},
		map[string]string{"MARIADB_USER": "app", "MARIADB_PASSWORD": myPassword, "MARIADB_DATABASE": "shop", "MYSQL_TCP_PORT": strconv.Itoa(myPort)})
	my.CreateDatabase(t, "shop")
	my.SQL(t, "shop", execMariaSeed)
	myWant := my.SQL(t, "shop", execMariaFingerprint)

	mongo := itest.StartFerretDB(t, itest.FerretDBOptions{Name: "lbe2e-zero-mongo", User: "root", Password: mongoPassword,
		Labels: labels("mongodb", "backup.database", "app"),
		Env:    map[string]string{"MONGO_INITDB_ROOT_USERNAME": "root", "MONGO_INITDB_ROOT_PASSWORD": mongoPassword}})
	mc := mongo.Connect(t)
	seedMongo(t, mc)
	mongoWant := mongoSnapshot(t, mc, "app")

	noCreds := itest.StartFerretDB(t, itest.FerretDBOptions{Name: "lbe2e-zero-mongo-nocreds", User: "root", Password: mongoPassword,
		Labels: labels("mongodb")})

	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups})
	newest := func(name, pattern string) string {
		matches, _ := filepath.Glob(filepath.Join(backups, "zero", name, pattern))
		for _, m := range matches {
			if _, err := os.Stat(m + ".metadata.json"); err == nil {
				return m
			}
		}
		return ""
	}
	itest.WaitFor(t, 120*time.Second, "a backup of each container with credentials, a failure of the one without", func() bool {
		return newest(pg.Name, "postgres-app-*.dump.gz") != "" && newest(pgFile.Name, "postgres-app-*.dump.gz") != "" &&
			newest(my.Name, "mysql-shop-*.sql.gz") != "" && newest(mongo.Name, "mongodb-app-*.archive.gz") != "" &&
			strings.HasPrefix(execLastRuns(t, agent)[noCreds.Name], "fail")
	})
	runs := execLastRuns(t, agent)
	for n, r := range runs {
		t.Logf("last run of %s: %s", n, r)
	}
	agent.Stop(t)
	for _, secret := range []string{pgPassword, filePassword, myPassword, mongoPassword} {
		if strings.Contains(agent.Logs(), secret) {
			t.Errorf("agent logs contain a password %q", secret)
		}
		for n, r := range runs {
			if strings.Contains(r, secret) {
				t.Errorf("the error of %s contains a password: %q", n, r)
			}
		}
	}
	for _, w := range []string{"MONGO_INITDB_ROOT_USERNAME", "backup.conn"} {
		if !strings.Contains(runs[noCreds.Name], w) {
			t.Errorf("last run of %s = %q, want it to mention %q", noCreds.Name, runs[noCreds.Name], w)
		}
	}

	// PostgreSQL: restore inside each container and compare.
	for _, c := range []struct {
		pg        *itest.Postgres
		sql, want string
	}{{pg, fingerprintSQL, pgWant}, {pgFile, "SELECT x FROM t", "42"}} {
		c.pg.CreateDatabase(t, "restored")
		restore := exec.Command("sh", "-c", `gunzip -c "$1" | docker exec -i "$2" pg_restore --no-owner --exit-on-error -h /var/run/postgresql -p "$3" -U postgres -d restored`,
			"sh", newest(c.pg.Name, "postgres-app-*.dump.gz"), c.pg.Name, fmt.Sprint(c.pg.Port))
		if out, err := restore.CombinedOutput(); err != nil {
			t.Fatalf("%s: gunzip | pg_restore: %v\n%s", c.pg.Name, err, out)
		}
		if got := c.pg.Psql(t, "restored", c.sql); got != c.want {
			t.Errorf("%s: restored data differs:\n got  %s\n want %s", c.pg.Name, got, c.want)
		}
	}

	// MariaDB: the mariadb client restores it into a fresh database.
	my.CreateDatabase(t, "restored")
	restore := exec.Command("sh", "-c", `gunzip -c "$1" | docker exec -i "$2" mariadb --no-defaults -uroot --socket=/run/mysqld/mysqld.sock restored`,
		"sh", newest(my.Name, "mysql-shop-*.sql.gz"), my.Name)
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("gunzip | mariadb: %v\n%s", err, out)
	}
	if got := my.SQL(t, "restored", execMariaFingerprint); got != myWant {
		t.Errorf("restored MariaDB data differs:\n got  %s\n want %s", got, myWant)
	}

	// MongoDB: our own restore path, with the connection derived from the
	// container's labels and environment (no --conn).
	key, _ := filepath.Rel(backups, newest(mongo.Name, "mongodb-app-*.archive.gz"))
	out, code := runCLI(t, backups, "restore", "--database", "restored", key)
	if code != 0 {
		t.Fatalf("label-backup restore into the zero-config container: exit %d\n%s", code, out)
	}
	checkNoSecret(t, "restore output", out, mongoPassword)
	compareMongo(t, "restored database", mongoSnapshot(t, mc, "restored"), mongoWant)
}
