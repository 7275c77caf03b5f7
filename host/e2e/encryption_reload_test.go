package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/labelbackup/label-backup/host/internal/itest"
	"github.com/labelbackup/label-backup/host/internal/metadata"
)

// TestGPGEncryption: with GPG_PUBLIC_KEY_PATH every backup is encrypted
// after compression; the real gpg decrypts it back to the gzip stream; the
// checksum covers the stored (encrypted) bytes; metadata records it.
func TestGPGEncryption(t *testing.T) {
	home := t.TempDir()
	gpg := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--batch", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	gpg("--quick-gen-key", "Backups <backups@example.com>", "ed25519", "sign", "never")
	var fingerprint string
	for _, line := range strings.Split(string(gpg("--list-keys", "--with-colons", "backups@example.com")), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			fingerprint = f[9]
			break
		}
	}
	gpg("--quick-add-key", fingerprint, "cv25519", "encr", "never")
	pub := filepath.Join(t.TempDir(), "backup.pub")
	if err := os.WriteFile(pub, gpg("--armor", "--export", "backups@example.com"), 0o644); err != nil {
		t.Fatal(err)
	}

	c := startLabeled(t, "lbe2e-gpg", map[string]string{
		"backup.enabled": "true", "backup.type": "synthetic", "backup.cron": "*/2 * * * * *",
		"backup.conn": "synthetic://?size=3000000",
	})
	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups, "GPG_PUBLIC_KEY_PATH": pub})
	var file string
	itest.WaitFor(t, 30*time.Second, "an encrypted backup", func() bool {
		m, _ := filepath.Glob(filepath.Join(backups, c, "*.txt.gz.gpg.metadata.json"))
		if len(m) > 0 {
			file = strings.TrimSuffix(m[0], ".metadata.json")
			return true
		}
		return false
	})
	agent.Stop(t)

	stored, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(file + ".metadata.json")
	meta, err := metadata.Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(stored)
	if meta.Encryption != "gpg" || meta.Checksum != hex.EncodeToString(sum[:]) {
		t.Errorf("metadata: encryption %q checksum %s, want gpg and the stored file's %x", meta.Encryption, meta.Checksum, sum)
	}
	// gpg --decrypt | gunzip gives back the dump.
	dec := exec.Command("sh", "-c", `gpg --batch --homedir "$1" --pinentry-mode loopback --passphrase '' --decrypt "$2" | gunzip | wc -c`, "sh", home, file)
	out, err := dec.Output()
	if err != nil {
		t.Fatalf("gpg --decrypt | gunzip: %v", err)
	}
	if strings.TrimSpace(string(out)) != "3000000" {
		t.Errorf("decrypted and decompressed %s bytes, want 3000000", strings.TrimSpace(string(out)))
	}
	if bytes.Contains(stored, []byte("alpha")) {
		t.Error("stored file contains plaintext")
	}
}

// TestAgeEncryptionRestore: AGE_RECIPIENTS encrypts; label-backup restore
// with the identity decrypts, checks and restores into PostgreSQL.
func TestAgeEncryptionRestore(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	identity := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(identity, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const password = "age-e2e-pw"
	port := itest.FreePort(t)
	pg := itest.StartPostgres(t, itest.PostgresOptions{Port: port, Password: password, Labels: map[string]string{
		"backup.enabled": "true", "backup.type": "postgres", "backup.cron": "*/2 * * * * *",
		"backup.conn": fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/app?sslmode=disable", password, port),
	}})
	pg.CreateDatabase(t, "app")
	pg.Psql(t, "app", seedSQL)
	want := pg.Psql(t, "app", fingerprintSQL)

	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups, "AGE_RECIPIENTS": id.Recipient().String()})
	var key string
	itest.WaitFor(t, 60*time.Second, "an age-encrypted backup", func() bool {
		m, _ := filepath.Glob(filepath.Join(backups, pg.Name, "*.dump.gz.age.metadata.json"))
		if len(m) > 0 {
			key, _ = filepath.Rel(backups, strings.TrimSuffix(m[0], ".metadata.json"))
			return true
		}
		return false
	})
	agent.Stop(t)

	pg.CreateDatabase(t, "restored")
	bin := itest.BuildBinaries(t)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(bin, "label-backup"), args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LOCAL_BACKUP_PATH=" + backups, "PLUGIN_DIR=" + bin, "LOG_LEVEL=error"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	target := fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/restored?sslmode=disable", password, port)
	if out, err := run("restore", "--conn", target, key); err == nil || !strings.Contains(out, "encrypted") {
		t.Errorf("restore without the identity: %v\n%s", err, out)
	}
	if out, err := run("restore", "--conn", target, "--age-identity", identity, key); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if got := pg.Psql(t, "restored", fingerprintSQL); got != want {
		t.Errorf("restored data differs:\n got  %s\n want %s", got, want)
	}
}

// TestReloadUnderLoad: SIGHUP re-reads CONFIG_FILE while backups run every
// second: the new settings apply to the next runs, nothing panics, no run
// is lost or duplicated, and an invalid file is rejected with the old
// configuration kept.
func TestReloadUnderLoad(t *testing.T) {
	var names []string
	for i := range 3 {
		names = append(names, startLabeled(t, fmt.Sprintf("lbe2e-reload-%d", i), map[string]string{
			"backup.enabled": "true", "backup.type": "synthetic", "backup.cron": "*/1 * * * * *",
			"backup.conn": "synthetic://?size=2000000",
		}))
	}
	cfgFile := filepath.Join(t.TempDir(), "agent.env")
	write := func(s string) {
		if err := os.WriteFile(cfgFile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("COMPRESSION=gzip\n")
	backups := filepath.Join(t.TempDir(), "backups")
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups, "CONFIG_FILE": cfgFile})
	count := func(ext string) int {
		n := 0
		for _, c := range names {
			m, _ := filepath.Glob(filepath.Join(backups, c, "*.txt"+ext))
			n += len(m)
		}
		return n
	}
	itest.WaitFor(t, 20*time.Second, "gzip backups", func() bool { return count(".gz") >= 3 })

	write("COMPRESSION=zstd\nCONCURRENT_BACKUP_LIMIT=1\nLOG_LEVEL=info\n")
	for range 3 { // repeated signals mid-run must be harmless
		syscall.Kill(agent.PID(), syscall.SIGHUP)
		time.Sleep(100 * time.Millisecond)
	}
	itest.WaitFor(t, 20*time.Second, "zstd backups after the reload", func() bool { return count(".zst") >= 3 })

	write("COMPRESSION=lz4\n")
	syscall.Kill(agent.PID(), syscall.SIGHUP)
	itest.WaitFor(t, 10*time.Second, "the bad configuration to be rejected", func() bool {
		return strings.Contains(agent.Logs(), "configuration reload rejected")
	})
	before := count(".zst")
	itest.WaitFor(t, 20*time.Second, "backups to go on with the old configuration", func() bool { return count(".zst") >= before+3 })
	if exited, err := agent.Exited(); exited {
		t.Fatalf("agent exited: %v", err)
	}
	if took := agent.Stop(t); took > 10*time.Second {
		t.Errorf("stop took %v", took)
	}
	if strings.Contains(agent.Logs(), "panic") {
		t.Error("the agent panicked")
	}
	// Every stored backup has its metadata: nothing half-written.
	for _, c := range names {
		entries, _ := os.ReadDir(filepath.Join(backups, c))
		files, metas := 0, 0
		for _, e := range entries {
			switch {
			case strings.HasPrefix(e.Name(), "."):
				t.Errorf("temporary file left: %s", e.Name())
			case strings.HasSuffix(e.Name(), ".metadata.json"):
				metas++
			default:
				files++
			}
		}
		if files != metas {
			t.Errorf("%s: %d backups, %d metadata files", c, files, metas)
		}
	}
}
