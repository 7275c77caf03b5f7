package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

// execLastRuns maps container name → "outcome: error" of its last run.
func execLastRuns(t *testing.T, a *itest.Agent) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, j := range a.MustJobs(t).Jobs {
		if j.LastRun != nil {
			out[j.ContainerName] = j.LastRun.Outcome + ": " + j.LastRun.Error
		}
	}
	return out
}

// TestPostgresExecModeZeroConfig: with backup.mode=exec and no backup.conn,
// the agent derives the connection from the container's POSTGRES_*
// variables and runs pg_dump inside the database container through Docker
// exec (the plugin never touches the Docker socket). The backup restores
// to the same data. Next to it: ${VAR} references in backup.conn resolved
// from the container's environment, a *_FILE password read inside the
// container, a failing exec'd tool reported with its exit status and
// stderr, and a container with no usable credentials reported by name.
func TestPostgresExecModeZeroConfig(t *testing.T) {
	const password = "exec-Secret-pw"
	const filePassword = "file-Secret-pw"
	labels := func(extra ...string) map[string]string {
		l := map[string]string{
			"backup.enabled": "true",
			"backup.type":    "postgres",
			"backup.cron":    "*/2 * * * * *",
			"backup.dest":    "local",
			"backup.prefix":  "exec",
		}
		for i := 0; i < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}

	// Zero-config exec mode: only the official image's variables.
	zero := itest.StartPostgresEnv(t, itest.PostgresOptions{
		Name: "lbe2e-exec-zero", Password: password, Labels: labels("backup.mode", "exec"),
	}, map[string]string{"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": password, "POSTGRES_DB": "app"})
	zero.CreateDatabase(t, "app")
	zero.Psql(t, "app", seedSQL)
	want := zero.Psql(t, "app", fingerprintSQL)

	// The password in a file inside the container (POSTGRES_PASSWORD_FILE).
	// The Unix socket trusts, so check the file really was read: only a
	// wrong path fails (below, "lbe2e-exec-nofile").
	fromFile := itest.StartPostgresEnv(t, itest.PostgresOptions{
		Name: "lbe2e-exec-file", Password: filePassword, Labels: labels("backup.mode", "exec"),
	}, map[string]string{"POSTGRES_PASSWORD_FILE": "/tmp/pw", "POSTGRES_DB": "app"})
	fromFile.WriteFile(t, "/tmp/pw", filePassword+"\n")
	fromFile.CreateDatabase(t, "app")
	fromFile.Psql(t, "app", "CREATE TABLE t (x int); INSERT INTO t VALUES (42);")

	// Network mode, connection string with ${VAR} references.
	refs := itest.StartPostgresEnv(t, itest.PostgresOptions{
		Name: "lbe2e-exec-refs", Password: password,
		Labels: labels("backup.conn", "postgresql://postgres:${POSTGRES_PASSWORD}@127.0.0.1:${PGPORT}/app?sslmode=disable"),
	}, map[string]string{"POSTGRES_PASSWORD": password})
	refs.CreateDatabase(t, "app")
	refs.Psql(t, "app", "CREATE TABLE t (x int); INSERT INTO t VALUES (7);")

	// The exec'd tool fails: a database that does not exist.
	wrongDB := itest.StartPostgresEnv(t, itest.PostgresOptions{
		Name: "lbe2e-exec-wrongdb", Password: password, Labels: labels("backup.mode", "exec", "backup.database", "nope"),
	}, map[string]string{"POSTGRES_PASSWORD": password})

	// Containers without usable credentials.
	startLabeled(t, "lbe2e-exec-nocreds", labels("backup.mode", "exec"))
	startLabeled(t, "lbe2e-exec-noref", labels("backup.conn", "postgresql://postgres:${DB_SECRET}@127.0.0.1:1/app"))
	noFile := itest.StartPostgresEnv(t, itest.PostgresOptions{
		Name: "lbe2e-exec-nofile", Password: password, Labels: labels("backup.mode", "exec"),
	}, map[string]string{"POSTGRES_PASSWORD_FILE": "/run/secrets/missing"})

	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups})

	newest := func(name string) string {
		matches, _ := filepath.Glob(filepath.Join(backups, "exec", name, "postgres-app-*.dump.gz"))
		for _, m := range matches {
			if _, err := os.Stat(m + ".metadata.json"); err == nil {
				return m
			}
		}
		return ""
	}
	itest.WaitFor(t, 120*time.Second, "backups of the good containers and failures of the bad ones", func() bool {
		runs := execLastRuns(t, agent)
		for _, n := range []string{wrongDB.Name, "lbe2e-exec-nocreds", "lbe2e-exec-noref", noFile.Name} {
			if !strings.HasPrefix(runs[n], "fail") {
				return false
			}
		}
		return newest(zero.Name) != "" && newest(fromFile.Name) != "" && newest(refs.Name) != ""
	})
	runs := execLastRuns(t, agent)
	for n, r := range runs {
		t.Logf("last run of %s: %s", n, r)
	}
	if took := agent.Stop(t); took > 10*time.Second {
		t.Errorf("agent took %v to stop", took)
	}

	// The failures say what went wrong.
	checkRun := func(name string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(runs[name], w) {
				t.Errorf("last run of %s = %q, want it to mention %q", name, runs[name], w)
			}
		}
	}
	checkRun(wrongDB.Name, "exited with status 2", `database "nope" does not exist`)
	checkRun("lbe2e-exec-nocreds", "POSTGRES_PASSWORD", "POSTGRES_PASSWORD_FILE", "backup.conn")
	checkRun("lbe2e-exec-noref", "DB_SECRET")
	checkRun(noFile.Name, "POSTGRES_PASSWORD_FILE", "/run/secrets/missing", "cat exited with status 1")

	logs := agent.Logs()
	for _, secret := range []string{password, filePassword} {
		if strings.Contains(logs, secret) {
			t.Errorf("agent logs contain a password %q", secret)
		}
		for n, r := range runs {
			if strings.Contains(r, secret) {
				t.Errorf("the error of %s contains a password: %q", n, r)
			}
		}
	}

	// Restore the exec-mode dump inside the container and compare.
	file := newest(zero.Name)
	checkMetadataExec(t, file)
	zero.CreateDatabase(t, "restored")
	restore := exec.Command("sh", "-c", `gunzip -c "$1" | docker exec -i "$2" pg_restore --no-owner --exit-on-error -h /var/run/postgresql -p "$3" -U postgres -d restored`,
		"sh", file, zero.Name, fmt.Sprint(zero.Port))
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("gunzip | docker exec pg_restore: %v\n%s", err, out)
	}
	if got := zero.Psql(t, "restored", fingerprintSQL); got != want {
		t.Errorf("restored data differs:\n got  %s\n want %s", got, want)
	}
	// label-backup restore with no --conn: the container's own labels
	// apply, so pg_restore runs inside it with its own credentials.
	zero.CreateDatabase(t, "viacli")
	key, _ := filepath.Rel(backups, file)
	if out, code := runCLI(t, backups, "restore", "--database", "viacli", key); code != 0 {
		t.Fatalf("label-backup restore into the exec-mode container: exit %d\n%s", code, out)
	}
	if got := zero.Psql(t, "viacli", fingerprintSQL); got != want {
		t.Errorf("data restored by label-backup restore differs:\n got  %s\n want %s", got, want)
	}

	// The other two dumps hold their table.
	for _, c := range []struct {
		pg   *itest.Postgres
		want string
	}{{fromFile, "42"}, {refs, "7"}} {
		c.pg.CreateDatabase(t, "restored")
		restore := exec.Command("sh", "-c", `gunzip -c "$1" | docker exec -i "$2" pg_restore --no-owner --exit-on-error -h /var/run/postgresql -p "$3" -U postgres -d restored`,
			"sh", newest(c.pg.Name), c.pg.Name, fmt.Sprint(c.pg.Port))
		if out, err := restore.CombinedOutput(); err != nil {
			t.Fatalf("%s: gunzip | docker exec pg_restore: %v\n%s", c.pg.Name, err, out)
		}
		if got := c.pg.Psql(t, "restored", "SELECT x FROM t"); got != c.want {
			t.Errorf("%s: restored %q, want %q", c.pg.Name, got, c.want)
		}
	}
}

func checkMetadataExec(t *testing.T, file string) {
	t.Helper()
	raw, err := os.ReadFile(file + ".metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"database_type": "postgres"`, `"database_name": "app"`, `"success": true`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("metadata lacks %s:\n%s", want, raw)
		}
	}
}
