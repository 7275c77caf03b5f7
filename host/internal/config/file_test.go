package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadEnvFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.env")
	os.WriteFile(p, []byte(`# comment
COMPRESSION=zstd
export CONCURRENT_BACKUP_LIMIT = 4
WEBHOOK_SECRET="a \"quoted\" secret"
LOG_LEVEL='debug'

`), 0o600)
	vars, err := ReadEnvFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"COMPRESSION": "zstd", "CONCURRENT_BACKUP_LIMIT": "4", "WEBHOOK_SECRET": `a "quoted" secret`, "LOG_LEVEL": "debug"}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s = %q, want %q", k, vars[k], v)
		}
	}
	os.WriteFile(p, []byte("GOOD=1\nthis line has no equals sign hunter2\n"), 0o600)
	_, err = ReadEnvFile(p)
	if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v: want the line number and no content", err)
	}
}

func TestFileOverridesEnvironment(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.env")
	os.WriteFile(p, []byte("BACKUP_TIMEOUT_MINUTES=5\n"), 0o600)
	t.Setenv(FileVar, p)
	t.Setenv("BACKUP_TIMEOUT_MINUTES", "30")
	t.Setenv("CONCURRENT_BACKUP_LIMIT", "7")
	t.Setenv("PLUGIN_DIR", "/p")
	c, err := FromEnvAndFile()
	if err != nil {
		t.Fatal(err)
	}
	if c.BackupTimeout != 5*time.Minute || c.ConcurrentBackupLimit != 7 {
		t.Errorf("timeout %v limit %d: want the file's 5m and the environment's 7", c.BackupTimeout, c.ConcurrentBackupLimit)
	}
}
