package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
	"github.com/labelbackup/label-backup/host/internal/metadata"
)

const seedSQL = `
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, note text);
CREATE INDEX customers_name ON customers (name);
INSERT INTO customers (name, note)
  SELECT 'customer ' || g, repeat('ünïcode ✓ ', g % 7) FROM generate_series(1, 5000) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(10,2));
INSERT INTO orders (customer_id, total) SELECT 1 + g % 5000, g * 1.25 FROM generate_series(1, 20000) g;
`

// fingerprintSQL summarises the data so two databases can be compared.
const fingerprintSQL = `
SELECT (SELECT count(*) FROM customers) || '/' ||
       (SELECT md5(string_agg(id || ':' || name || ':' || coalesce(note, ''), ',' ORDER BY id)) FROM customers) || '/' ||
       (SELECT count(*) FROM orders) || '/' ||
       (SELECT md5(string_agg(id || ':' || customer_id || ':' || total, ',' ORDER BY id)) FROM orders)`

// TestPostgresToLocal is the foundation's promise: a labeled PostgreSQL
// container is backed up on its cron by the agent, through the postgres
// dumper plugin and the local sink plugin, into a gzip file plus metadata
// that pg_restore turns back into the same data.
func TestPostgresToLocal(t *testing.T) {
	const password = "e2e-Secret-pw"
	port := itest.FreePort(t)
	// The labels of the original description, on the database container.
	pg := itest.StartPostgres(t, itest.PostgresOptions{
		Name:     "lbe2e-pg",
		Port:     port,
		Password: password,
		Labels: map[string]string{
			"backup.enabled": "true",
			"backup.type":    "postgres",
			"backup.cron":    "*/2 * * * * *",
			"backup.conn":    fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/app?sslmode=disable", password, port),
			"backup.dest":    "local",
			"backup.prefix":  "postgres-backups",
		},
	})
	db := pg.Name
	pg.CreateDatabase(t, "app")
	pg.Psql(t, "app", seedSQL)
	want := pg.Psql(t, "app", fingerprintSQL)

	// A container with broken labels must not disturb anything.
	startLabeled(t, "lbe2e-bad", map[string]string{
		"backup.enabled": "true",
		"backup.type":    "postgres",
		"backup.cron":    "not a cron",
		"backup.conn":    "postgresql://x:hunter2@127.0.0.1:1/x",
	})

	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups})

	var file string
	itest.WaitFor(t, 90*time.Second, "a backup with its metadata", func() bool {
		matches, _ := filepath.Glob(filepath.Join(backups, "postgres-backups", db, "postgres-app-*.dump.gz"))
		for _, m := range matches {
			if _, err := os.Stat(m + ".metadata.json"); err == nil {
				file = m
				return true
			}
		}
		return false
	})

	var jobs struct {
		Jobs []struct {
			ContainerName string `json:"container_name"`
		} `json:"jobs"`
		Rejected []struct {
			ContainerName string `json:"container_name"`
			Error         string `json:"error"`
		} `json:"rejected"`
	}
	agent.GetJSON(t, "/jobs", &jobs)
	// Only this test's containers count: a shared engine may run others.
	scheduled, rejected := 0, ""
	for _, j := range jobs.Jobs {
		if j.ContainerName == db || j.ContainerName == "lbe2e-bad" {
			scheduled++
		}
	}
	for _, r := range jobs.Rejected {
		if r.ContainerName == "lbe2e-bad" {
			rejected = r.Error
		}
	}
	if scheduled != 1 {
		t.Errorf("jobs = %+v, want exactly the one valid container of this test", jobs.Jobs)
	}
	if !strings.Contains(rejected, "backup.cron") {
		t.Errorf("rejected = %+v, want the bad container with a backup.cron error", jobs.Rejected)
	}

	if took := agent.Stop(t); took > 10*time.Second {
		t.Errorf("agent took %v to stop", took)
	}
	logs := agent.Logs()
	for _, secret := range []string{password, "hunter2"} {
		if strings.Contains(logs, secret) {
			t.Errorf("agent logs contain a password %q", secret)
		}
	}

	checkMetadata(t, file, db)
	checkPermissions(t, backups)

	// Restore exactly as the README says: gunzip -c <file> | pg_restore -d <db>.
	pg.CreateDatabase(t, "restored")
	restore := exec.Command("sh", "-c", `gunzip -c "$1" | pg_restore --no-owner -d "$2"`, "sh", file,
		fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/restored?sslmode=disable", pg.Port))
	restore.Env = append(os.Environ(), "PGPASSWORD="+password)
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("gunzip | pg_restore: %v\n%s", err, out)
	}
	if got := pg.Psql(t, "restored", fingerprintSQL); got != want {
		t.Errorf("restored data differs:\n got  %s\n want %s", got, want)
	}

	// The same through the agent's own restore command, into a fresh
	// database, with the checksum verified first.
	key, _ := filepath.Rel(backups, file)
	cli := func(args ...string) (string, int) {
		cmd := exec.Command(filepath.Join(itest.BuildBinaries(t), "label-backup"), args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LOCAL_BACKUP_PATH=" + backups, "PLUGIN_DIR=" + itest.BuildBinaries(t), "LOG_LEVEL=error"}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	pg.CreateDatabase(t, "viacli")
	target := fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/viacli?sslmode=disable", password, pg.Port)
	if out, code := cli("restore", "--conn", target, key); code != 0 {
		t.Fatalf("label-backup restore: exit %d\n%s", code, out)
	}
	if got := pg.Psql(t, "viacli", fingerprintSQL); got != want {
		t.Errorf("data restored by the restore command differs:\n got  %s\n want %s", got, want)
	}
	if out, code := cli("list", "--json"); code != 0 || !strings.Contains(out, key) {
		t.Errorf("label-backup list: exit %d\n%s", code, out)
	}
	if out, code := cli("verify"); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("label-backup verify: exit %d\n%s", code, out)
	}

	// A corrupted backup is refused before the target is touched, and
	// verify names it.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xFF
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	pg.CreateDatabase(t, "untouched")
	untouched := fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/untouched?sslmode=disable", password, pg.Port)
	out, code := cli("restore", "--conn", untouched, key)
	if code != 3 || !strings.Contains(out, "corrupt") {
		t.Errorf("restore of a corrupt backup: exit %d\n%s", code, out)
	}
	if got := pg.Psql(t, "untouched", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); got != "0" {
		t.Errorf("a corrupt restore touched the target: %s tables", got)
	}
	if out, code := cli("verify"); code != 1 || !strings.Contains(out, "CORRUPT") {
		t.Errorf("verify of a corrupt backup: exit %d\n%s", code, out)
	}
}

// startLabeled runs a tiny long-lived container carrying labels and returns
// its name.
func startLabeled(t *testing.T, name string, labels map[string]string) string {
	t.Helper()
	args := []string{"run", "-d", "--name", name, "--network", "none", "--label", "labelbackup.itest=1", "-v", "/usr:/usr:ro"}
	for k, v := range labels {
		args = append(args, "--label", k+"="+v)
	}
	args = append(args, "labelbackup-itest/hostusr:1", "sleep", "infinity")
	itest.Remove(t, name)
	itest.Docker(t, args...)
	t.Cleanup(func() { itest.Remove(t, name) })
	return name
}

func checkMetadata(t *testing.T, file, container string) {
	t.Helper()
	raw, err := os.ReadFile(file + ".metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metadata.Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if meta.Checksum != hex.EncodeToString(sum[:]) {
		t.Errorf("metadata checksum %s, file sha256 %x", meta.Checksum, sum)
	}
	if meta.BackupSizeBytes != int64(len(data)) {
		t.Errorf("metadata size %d, file size %d", meta.BackupSizeBytes, len(data))
	}
	if !meta.Success || meta.ContainerName != container || meta.DatabaseType != "postgres" || meta.DatabaseName != "app" ||
		meta.CompressionType != "gzip" || meta.Version != "1.0" || meta.Destination != file || meta.ContainerID == "" ||
		meta.Timestamp.IsZero() || meta.DurationSeconds <= 0 {
		t.Errorf("metadata = %+v", meta)
	}
	// The documented field names are all present.
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"timestamp", "container_id", "container_name", "database_type", "database_name",
		"backup_size_bytes", "checksum", "compression_type", "version", "destination", "duration_seconds", "success"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("metadata lacks %q", f)
		}
	}
}

// checkPermissions: backups are private to the agent's user.
func checkPermissions(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if p != root && info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, info.Mode().Perm(), want)
		}
		if strings.Contains(d.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
