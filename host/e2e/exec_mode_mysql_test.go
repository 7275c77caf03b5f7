package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

const execMariaSeed = `
CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100) NOT NULL, price DECIMAL(10,2));
INSERT INTO items (name, price) SELECT CONCAT('item ', seq, ' ünï ✓'), seq * 1.5 FROM seq_1_to_3000;
`

const execMariaFingerprint = `SELECT CONCAT(COUNT(*), '/', MD5(GROUP_CONCAT(id, ':', name, ':', price ORDER BY id SEPARATOR ','))) FROM items`

// TestMySQLExecModeZeroConfig: a MariaDB container labeled backup.mode=exec
// without backup.conn is dumped with mariadb-dump run inside it, connected
// over its Unix socket with the account its MARIADB_* variables name; the
// dump restores to the same data. A wrong database fails with the client's
// exit status and message; a container without usable credentials fails
// naming the variables it lacks.
func TestMySQLExecModeZeroConfig(t *testing.T) {
	const password = "exec-My@Secret:pw"
	labels := func(extra ...string) map[string]string {
		l := map[string]string{
			"backup.enabled": "true",
			"backup.type":    "mysql",
			"backup.cron":    "*/2 * * * * *",
			"backup.mode":    "exec",
			"backup.prefix":  "execmy",
		}
		for i := 0; i < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	env := map[string]string{"MARIADB_USER": "app", "MARIADB_PASSWORD": password, "MARIADB_DATABASE": "shop"}
	m := itest.StartMariaDBEnv(t, itest.MariaDBOptions{
		Name: "lbe2e-execmy", User: "app", Password: password, Labels: labels(),
	}, env)
	m.CreateDatabase(t, "shop")
	m.SQL(t, "shop", execMariaSeed)
	want := m.SQL(t, "shop", execMariaFingerprint)

	wrong := itest.StartMariaDBEnv(t, itest.MariaDBOptions{
		Name: "lbe2e-execmy-wrongdb", User: "app", Password: password, Labels: labels("backup.database", "nope"),
	}, env)
	startLabeled(t, "lbe2e-execmy-nocreds", labels())

	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups})
	var file string
	itest.WaitFor(t, 120*time.Second, "a backup and two failures", func() bool {
		runs := execLastRuns(t, agent)
		if !strings.HasPrefix(runs[wrong.Name], "fail") || !strings.HasPrefix(runs["lbe2e-execmy-nocreds"], "fail") {
			return false
		}
		matches, _ := filepath.Glob(filepath.Join(backups, "execmy", m.Name, "mysql-shop-*.sql.gz"))
		for _, f := range matches {
			if _, err := os.Stat(f + ".metadata.json"); err == nil {
				file = f
				return true
			}
		}
		return false
	})
	runs := execLastRuns(t, agent)
	for n, r := range runs {
		t.Logf("last run of %s: %s", n, r)
	}
	agent.Stop(t)
	if strings.Contains(agent.Logs(), password) {
		t.Errorf("agent logs contain the password")
	}
	for n, r := range runs {
		if strings.Contains(r, password) {
			t.Errorf("the error of %s contains the password: %q", n, r)
		}
	}
	for name, wants := range map[string][]string{
		wrong.Name:             {"exited with status 1", "Unknown database 'nope'"},
		"lbe2e-execmy-nocreds": {"MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD", "MARIADB_USER+MARIADB_PASSWORD", "backup.conn"},
	} {
		for _, w := range wants {
			if !strings.Contains(runs[name], w) {
				t.Errorf("last run of %s = %q, want it to mention %q", name, runs[name], w)
			}
		}
	}

	// Restore inside the container into a fresh database and compare.
	m.CreateDatabase(t, "restored")
	restore := exec.Command("sh", "-c", `gunzip -c "$1" | docker exec -i "$2" mariadb --no-defaults -uroot --socket=/run/mysqld/mysqld.sock restored`,
		"sh", file, m.Name)
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("gunzip | docker exec mariadb: %v\n%s", err, out)
	}
	if got := m.SQL(t, "restored", execMariaFingerprint); got != want {
		t.Errorf("restored data differs:\n got  %s\n want %s", got, want)
	}
}
