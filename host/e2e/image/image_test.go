// Package image tests the real sidecar image end to end: it is built by
// scripts/image.sh (cached and idempotent), run as a container next to
// labeled PostgreSQL containers with the Docker socket and a backup
// directory mounted, and its backups are restored and compared.
//
// It needs root, a Docker engine (scripts/docker-up.sh) and, for the S3
// part, versitygw (scripts/install-deps.sh --with-s3). The S3 part runs
// when the image holds the s3 plugin.
package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
	"github.com/labelbackup/label-backup/host/internal/webhook"
)

const (
	// uid and gid of the image's labelbackup user.
	imageUID = 10001
	imageGID = 10001

	bucket    = "lbimage"
	s3Access  = "lbimageaccess"
	s3Secret  = "Im4ge-S3-secret-d81c"
	hookToken = "image-e2e-webhook-secret"
	dbPass    = "Image-e2e-pw-5512"
)

const seedSQL = `
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, note text);
INSERT INTO customers (name, note)
  SELECT 'customer ' || g, repeat('ünïcode ✓ ', g % 7) FROM generate_series(1, 3000) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(10,2));
INSERT INTO orders (customer_id, total) SELECT 1 + g % 3000, g * 1.25 FROM generate_series(1, 10000) g;
`

const fingerprintSQL = `
SELECT (SELECT count(*) FROM customers) || '/' ||
       (SELECT md5(string_agg(id || ':' || name || ':' || coalesce(note, ''), ',' ORDER BY id)) FROM customers) || '/' ||
       (SELECT count(*) FROM orders) || '/' ||
       (SELECT md5(string_agg(id || ':' || customer_id || ':' || total, ',' ORDER BY id)) FROM orders)`

const mariaSeedSQL = `
CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100) NOT NULL, note TEXT)
  ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO customers (name, note) SELECT CONCAT('customer ', seq), REPEAT('ünïcode ✓ ', seq % 7) FROM seq_1_to_2000;
`

const mariaFingerprintSQL = `
SET SESSION group_concat_max_len = 67108864;
SELECT CONCAT((SELECT COUNT(*) FROM customers), '/',
  (SELECT MD5(GROUP_CONCAT(CONCAT_WS(':', id, name, note) ORDER BY id SEPARATOR ',')) FROM customers));
`

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	// this file is host/e2e/image/image_test.go
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// imageRef is the image scripts/image.sh builds: $LB_IMAGE or its default.
// With LB_IMAGE_BUILT=1 the tests skip scripts/image.sh and test the image
// $LB_IMAGE as it is.
func imageRef() string {
	if v := os.Getenv("LB_IMAGE"); v != "" {
		return v
	}
	return "label-backup:local"
}

var built struct {
	once sync.Once
	ok   bool
}

// buildImage runs scripts/image.sh once per test process. The script reuses
// its cached base rootfs, Go's build cache and Docker's layer cache, so a
// run with nothing changed takes seconds.
func buildImage(t *testing.T) string {
	t.Helper()
	built.once.Do(func() { built.ok = runImageScript(t) })
	if !built.ok {
		t.Fatal("scripts/image.sh failed (see the first test's log)")
	}
	return imageRef()
}

func runImageScript(t *testing.T) bool {
	t.Helper()
	ref := imageRef()
	if v := os.Getenv("LB_IMAGE_BUILT"); v != "" && v != "0" {
		// An image built some other way (e.g. `docker build .`): test it as is.
		if _, err := dockerEnv(t, nil, "image", "inspect", ref); err != nil {
			t.Errorf("LB_IMAGE_BUILT is set but %v", err)
			return false
		}
		t.Logf("LB_IMAGE_BUILT: testing %s as it is", ref)
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(), "scripts", "image.sh"), ref)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Errorf("scripts/image.sh: %v\n%s", err, stderr.String())
		return false
	}
	t.Logf("scripts/image.sh (%v):\n%s", time.Since(start).Round(time.Second), strings.TrimSpace(stderr.String()))
	if got := strings.TrimSpace(string(out)); got != ref {
		t.Errorf("scripts/image.sh printed %q, want %q", got, ref)
		return false
	}
	return true
}

// dockerEnv runs the docker CLI with extra environment variables (so that
// secrets are passed with -e NAME, never on the command line).
func dockerEnv(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// TestImageStatic: what the image is made of, without running the agent.
func TestImageStatic(t *testing.T) {
	itest.RequireDocker(t)
	ref := buildImage(t)

	got := itest.Docker(t, "image", "inspect", "-f",
		"{{.Config.User}}|{{json .Config.Healthcheck.Test}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}", ref)
	want := `10001:10001|["CMD","/usr/lib/label-backup/label-backup","healthcheck"]|["/usr/lib/label-backup/label-backup"]|["run"]`
	if got != want {
		t.Errorf("image config = %s\nwant %s", got, want)
	}
	size, _ := strconv.ParseInt(itest.Docker(t, "image", "inspect", "-f", "{{.Size}}", ref), 10, 64)
	t.Logf("image %s: %.1f MB", ref, float64(size)/1e6)

	// The tools the plugins run, the binaries, and the user.
	out := itest.Docker(t, "run", "--rm", "--network", "none", "--entrypoint", "sh", ref, "-c",
		`set -e; id -u; id -g; pg_dump --version; pg_restore --version; psql --version; mariadb-dump --version;
		 ls /usr/lib/label-backup; test -f /usr/share/zoneinfo/Europe/Paris; test -s /etc/ssl/certs/ca-certificates.crt;
		 ! command -v gpg; ! command -v curl; test ! -e /var/lib/apt/lists/lock || test -z "$(ls /var/lib/apt/lists | grep -v -e lock -e partial)"`)
	t.Logf("inside the image:\n%s", out)
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || lines[0] != strconv.Itoa(imageUID) || lines[1] != strconv.Itoa(imageGID) {
		t.Errorf("the image runs as %v, want uid/gid %d/%d", lines[:min(2, len(lines))], imageUID, imageGID)
	}
	for _, bin := range []string{"label-backup", "label-backup-plugin-postgres", "label-backup-plugin-local",
		"label-backup-plugin-mysql", "pg_dump (PostgreSQL) 15", "mariadb-dump"} {
		if !strings.Contains(out, bin) {
			t.Errorf("image lacks %q", bin)
		}
	}
}

// hookReceiver collects signed webhook notifications.
type hookReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []map[string]any
	bad int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !webhook.Verify(hookToken, body, r.Header.Get("X-LabelBackup-Signature-SHA256")) {
			h.mu.Lock()
			h.bad++
			h.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, m)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// find returns the first notification for container with this outcome.
func (h *hookReceiver) find(container string, success bool) map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.got {
		if m["container_name"] == container && m["success"] == success {
			return m
		}
	}
	return nil
}

// gateway is a versitygw S3 server over a posix directory.
type gateway struct {
	dir  string
	port int
}

func versitygwBinary(t *testing.T) string {
	if p := os.Getenv("LB_VERSITYGW"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	p := filepath.Join(home, ".cache", "label-backup", "tools", "versitygw@v1.8.0", "versitygw")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("versitygw v1.8.0 is not at %s: run scripts/install-deps.sh --with-s3 (or set LB_VERSITYGW)", p)
	}
	return p
}

// startGateway runs versitygw on a free port and creates the bucket.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	bin := versitygwBinary(t)
	base := filepath.Join(itest.StateDir(), "itest")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(base, "image-s3-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := syscall.Setxattr(dir, "user.lbtest", []byte("1"), 0); err != nil {
		t.Fatalf("%s has no user xattrs, which versitygw needs: %v", dir, err)
	}
	g := &gateway{dir: dir, port: itest.FreePort(t)}
	cmd := exec.Command(bin, "--port", "127.0.0.1:"+strconv.Itoa(g.port), "--quiet", "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s3Access, "ROOT_SECRET_KEY="+s3Secret)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	itest.WaitFor(t, 20*time.Second, "versitygw to listen", func() bool {
		c, err := net.DialTimeout("tcp", g.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	create := exec.Command(bin, "admin", "--er", "http://"+g.addr(), "create-bucket", "--owner", s3Access, "--bucket", bucket)
	create.Env = append(os.Environ(), "ADMIN_ACCESS_KEY_ID="+s3Access, "ADMIN_SECRET_ACCESS_KEY="+s3Secret)
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("versitygw admin create-bucket: %v\n%s\n%s", err, out, logs.String())
	}
	return g
}

func (g *gateway) addr() string { return "127.0.0.1:" + strconv.Itoa(g.port) }

// waitBackup waits for a complete backup (data file and metadata file)
// matching pattern and returns the data file.
func waitBackup(t *testing.T, pattern string, sidecar string) string {
	t.Helper()
	var file string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if _, err := os.Stat(m + ".metadata.json"); err == nil {
				file = m
			}
		}
		if file != "" {
			return file
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command("docker", "logs", "--tail", "80", sidecar).CombinedOutput()
			t.Fatalf("no backup matching %s after 2 min; sidecar logs:\n%s", pattern, logs)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// restoreAndCompare restores file into a fresh database with the host's
// gunzip and pg_restore, as the README says, and compares the data.
func restoreAndCompare(t *testing.T, pg *itest.Postgres, file, db, want string) {
	t.Helper()
	pg.CreateDatabase(t, db)
	restore := exec.Command("sh", "-c", `gunzip -c "$1" | pg_restore --no-owner -d "$2"`, "sh", file,
		fmt.Sprintf("postgresql://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.Port, db))
	restore.Env = append(os.Environ(), "PGPASSWORD="+dbPass)
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("gunzip | pg_restore of %s: %v\n%s", file, err, out)
	}
	if got := pg.Psql(t, db, fingerprintSQL); got != want {
		t.Errorf("data restored from %s differs:\n got  %s\n want %s", file, got, want)
	}
}

func startPostgres(t *testing.T, name, dest, prefix string) (*itest.Postgres, string) {
	t.Helper()
	port := itest.FreePort(t)
	pg := itest.StartPostgres(t, itest.PostgresOptions{
		Name:     itest.UniqueName(name),
		Port:     port,
		Password: dbPass,
		Labels: map[string]string{
			"backup.enabled": "true",
			"backup.type":    "postgres",
			"backup.cron":    "*/4 * * * * *",
			"backup.conn":    fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/app?sslmode=disable", dbPass, port),
			"backup.dest":    dest,
			"backup.prefix":  prefix,
		},
	})
	pg.CreateDatabase(t, "app")
	pg.Psql(t, "app", seedSQL)
	return pg, pg.Psql(t, "app", fingerprintSQL)
}

// TestImageSidecar runs the image as the sidecar it is meant to be.
func TestImageSidecar(t *testing.T) {
	itest.RequireDocker(t)
	ref := buildImage(t)

	// Is the s3 plugin in the image? Then the S3 destination is tested too.
	plugins := itest.Docker(t, "run", "--rm", "--network", "none", "--entrypoint", "ls", ref, "/usr/lib/label-backup")
	withS3 := strings.Contains(plugins, "label-backup-plugin-s3")
	if !withS3 {
		t.Log("the image has no s3 plugin: the S3 part of this test does not run")
	}

	hooks := newHookReceiver(t)
	local, wantLocal := startPostgres(t, "lbimg-pg", "local", "pg-local")
	var remote *itest.Postgres
	var wantRemote string
	var gw *gateway
	if withS3 {
		gw = startGateway(t)
		remote, wantRemote = startPostgres(t, "lbimg-pg-s3", "s3", "pg-s3")
	}

	// MariaDB: the image's mariadb-dump.
	myPort := itest.FreePort(t)
	myConn := (&itest.MariaDB{Port: myPort, User: "app", Password: dbPass}).ConnString("app")
	maria := itest.StartMariaDB(t, itest.MariaDBOptions{
		Name: itest.UniqueName("lbimg-maria"), Port: myPort, User: "app", Password: dbPass,
		Labels: map[string]string{
			"backup.enabled": "true", "backup.type": "mysql", "backup.cron": "*/4 * * * * *",
			"backup.conn": myConn, "backup.dest": "local", "backup.prefix": "my-local",
		},
	})
	maria.CreateDatabase(t, "app")
	maria.SQL(t, "app", mariaSeedSQL)
	wantMaria := maria.SQL(t, "app", mariaFingerprintSQL)

	// The backup directory, writable by the image's user only.
	backups := filepath.Join(t.TempDir(), "backups")
	if err := os.Mkdir(backups, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(backups, imageUID, imageGID); err != nil {
		t.Fatalf("chown %s (the test must run as root): %v", backups, err)
	}

	var st syscall.Stat_t
	if err := syscall.Stat("/var/run/docker.sock", &st); err != nil {
		t.Fatal(err)
	}
	httpPort := itest.FreePort(t)
	name := itest.UniqueName("lbimg-agent")
	env := []string{
		"LOCAL_BACKUP_PATH=/backups",
		fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", httpPort),
		"WEBHOOK_URL=" + hooks.srv.URL + "/hook",
		"WEBHOOK_SECRET=" + hookToken,
		"LOG_LEVEL=debug",
		"RECONCILE_INTERVAL_SECONDS=2",
	}
	if withS3 {
		env = append(env,
			"BUCKET_NAME="+bucket,
			"ENDPOINT=http://"+gw.addr(),
			"ACCESS_KEY_ID="+s3Access,
			"SECRET_ACCESS_KEY="+s3Secret,
			"S3_USE_PATH_STYLE=true")
	}
	args := []string{"run", "-d", "--name", name, "--network", "host",
		"--label", itest.LabelKey + "=1", "--label", itest.TestLabelKey + "=" + t.Name(),
		"-v", "/var/run/docker.sock:/var/run/docker.sock",
		"--group-add", strconv.Itoa(int(st.Gid)),
		"-v", backups + ":/backups"}
	for _, kv := range env {
		args = append(args, "-e", kv[:strings.IndexByte(kv, '=')]) // values from the environment
	}
	args = append(args, ref)
	id, err := dockerEnv(t, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command("docker", "logs", "--tail", "100", id).CombinedOutput()
			t.Logf("sidecar logs:\n%s", logs)
		}
		exec.Command("docker", "rm", "-f", id).Run()
	})
	started := time.Now()

	// Backups appear where they should.
	localFile := waitBackup(t, filepath.Join(backups, "pg-local", local.Name, "postgres-app-*.dump.gz"), id)
	mariaFile := waitBackup(t, filepath.Join(backups, "my-local", maria.Name, "mysql-app-*.sql.gz"), id)
	var remoteFile string
	if withS3 {
		remoteFile = waitBackup(t, filepath.Join(gw.dir, bucket, "pg-s3", remote.Name, "postgres-app-*.dump.gz"), id)
	}
	t.Logf("first backups after %v", time.Since(started).Round(100*time.Millisecond))

	// Files belong to the image's user, private.
	fi, err := os.Stat(localFile)
	if err != nil {
		t.Fatal(err)
	}
	if s := fi.Sys().(*syscall.Stat_t); s.Uid != imageUID || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: uid %d mode %v, want uid %d mode 0600", localFile, s.Uid, fi.Mode().Perm(), imageUID)
	}

	// Signed webhooks for each container.
	itest.WaitFor(t, time.Minute, "signed success webhooks", func() bool {
		return hooks.find(local.Name, true) != nil && hooks.find(maria.Name, true) != nil &&
			(!withS3 || hooks.find(remote.Name, true) != nil)
	})
	if m := hooks.find(local.Name, true); m["destination_type"] != "local" {
		t.Errorf("local webhook payload = %v", m)
	}
	if withS3 {
		if m := hooks.find(remote.Name, true); m["destination_type"] != "s3" {
			t.Errorf("s3 webhook payload = %v", m)
		}
	}

	// The image's HEALTHCHECK reports healthy (first probe after 30 s).
	itest.WaitFor(t, 2*time.Minute, "the container's health to be healthy", func() bool {
		return itest.Docker(t, "inspect", "-f", "{{.State.Health.Status}}", id) == "healthy"
	})
	t.Logf("healthy after %v", time.Since(started).Round(100*time.Millisecond))

	// The API answers on the configured address (host network).
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/jobs", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	var jobs itest.JobsView
	json.NewDecoder(resp.Body).Decode(&jobs)
	resp.Body.Close()
	if len(jobs.Named(local.Name)) != 1 || (withS3 && len(jobs.Named(remote.Name)) != 1) {
		t.Errorf("GET /jobs = %+v", jobs)
	}

	// Restores as the README says, with the host's tools.
	restoreAndCompare(t, local, localFile, "restored", wantLocal)
	if withS3 {
		restoreAndCompare(t, remote, remoteFile, "restored", wantRemote)
	}

	maria.CreateDatabase(t, "restored")
	cmd := exec.Command("sh", "-c", `gunzip -c "$1" | mariadb --no-defaults -h127.0.0.1 -P"$2" -u"$3" "$4"`,
		"sh", mariaFile, strconv.Itoa(maria.Port), maria.User, "restored")
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+dbPass)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("gunzip -c | mariadb: %v\n%s", err, out)
	} else if got := maria.SQL(t, "restored", mariaFingerprintSQL); got != wantMaria {
		t.Errorf("MariaDB data restored from %s differs:\n got  %s\n want %s", mariaFile, got, wantMaria)
	}

	// The image's own restore command, with the image's pg_restore.
	key, _ := filepath.Rel(backups, localFile)
	local.CreateDatabase(t, "viaimage")
	target := fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/viaimage?sslmode=disable", dbPass, local.Port)
	if out, err := dockerEnv(t, []string{"LB_TARGET=" + target}, "run", "--rm", "--network", "host",
		"-v", backups+":/backups", "-e", "LB_TARGET", "-e", "LOG_LEVEL=error", "--entrypoint", "sh", ref,
		"-c", `exec label-backup restore --conn "$LB_TARGET" "$1"`, "sh", key); err != nil {
		t.Errorf("label-backup restore in the image: %v\n%s", err, out)
	} else if got := local.Psql(t, "viaimage", fingerprintSQL); got != wantLocal {
		t.Errorf("data restored by the image differs:\n got  %s\n want %s", got, wantLocal)
	}

	hooks.mu.Lock()
	if hooks.bad > 0 {
		t.Errorf("%d webhook requests had a bad signature", hooks.bad)
	}
	hooks.mu.Unlock()

	// A clean stop within Docker's grace period, and no secrets in the log.
	stopStart := time.Now()
	itest.Docker(t, "stop", "--time", "10", id)
	if took := time.Since(stopStart); took > 9*time.Second {
		t.Errorf("docker stop took %v", took)
	}
	if code := itest.Docker(t, "inspect", "-f", "{{.State.ExitCode}}", id); code != "0" {
		t.Errorf("the agent exited with %s after docker stop", code)
	}
	logs, _ := exec.Command("docker", "logs", id).CombinedOutput()
	for _, secret := range []string{dbPass, hookToken, s3Secret} { // dbPass is MariaDB's too
		if bytes.Contains(logs, []byte(secret)) {
			t.Errorf("the sidecar's log contains the secret %q", secret)
		}
	}
}
