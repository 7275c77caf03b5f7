package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func env(kv map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(map[string]string{"PLUGIN_DIR": "/opt/plugins"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		LogLevel: hclog.Info, HTTPAddr: ":8080", PluginDir: "/opt/plugins", LocalBackupPath: "/backups",
		ReconcileInterval: 10 * time.Second, ConcurrentBackupLimit: 20, BackupTimeout: 30 * time.Minute, Compression: "gzip",
		ShutdownGrace: 5 * time.Second,
		S3:            S3{Region: "us-east-1"},
		Webhook:       Webhook{Timeout: 10 * time.Second, MaxRetries: 3},
		Retention:     Retention{Period: 7 * 24 * time.Hour, KeepLast: 3, Schedule: "@daily"},
	}
	if c != want {
		t.Errorf("defaults =\n %+v\nwant\n %+v", c, want)
	}
	if c.S3.Configured() {
		t.Error("S3 configured without a bucket")
	}
}

func TestEveryVariableIsRead(t *testing.T) {
	c, err := Load(env(map[string]string{
		"LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json", "HTTP_ADDR": "127.0.0.1:9999", "PLUGIN_DIR": "/p",
		"LOCAL_BACKUP_PATH": "/data/b", "RECONCILE_INTERVAL_SECONDS": "3", "CONCURRENT_BACKUP_LIMIT": "2",
		"BACKUP_TIMEOUT_MINUTES": "0.5", "COMPRESSION": "zstd", "SHUTDOWN_GRACE_SECONDS": "2",
		"BUCKET_NAME": "bk", "REGION": "eu-west-3", "ENDPOINT": "http://127.0.0.1:7070", "ACCESS_KEY_ID": "AK",
		"SECRET_ACCESS_KEY": "SK", "S3_USE_PATH_STYLE": "true",
		"WEBHOOK_URL": "https://hooks.example/x", "WEBHOOK_SECRET": "whs", "WEBHOOK_TIMEOUT_SECONDS": "4", "WEBHOOK_MAX_RETRIES": "0",
		"GLOBAL_RETENTION_PERIOD": "36h", "GC_DRY_RUN": "true", "RETENTION_KEEP_LAST": "5", "GC_SCHEDULE": "0 3 * * *",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		LogLevel: hclog.Debug, LogJSON: true, HTTPAddr: "127.0.0.1:9999", PluginDir: "/p", LocalBackupPath: "/data/b",
		ReconcileInterval: 3 * time.Second, ConcurrentBackupLimit: 2, BackupTimeout: 30 * time.Second, Compression: "zstd",
		ShutdownGrace: 2 * time.Second,
		S3:            S3{Bucket: "bk", Region: "eu-west-3", Endpoint: "http://127.0.0.1:7070", AccessKeyID: "AK", SecretAccessKey: "SK", UsePathStyle: true},
		Webhook:       Webhook{URL: "https://hooks.example/x", Secret: "whs", Timeout: 4 * time.Second, MaxRetries: 0},
		Retention:     Retention{Period: 36 * time.Hour, KeepLast: 5, DryRun: true, Schedule: "0 3 * * *"},
	}
	if c != want {
		t.Errorf("config =\n %+v\nwant\n %+v", c, want)
	}
}

// TestDocumentedVariablesAreLookedUp: every variable Variables() documents
// is really read by Load (the earlier implementation documented variables
// it never read).
func TestDocumentedVariablesAreLookedUp(t *testing.T) {
	asked := map[string]bool{}
	_, _ = Load(func(k string) (string, bool) { asked[k] = true; return "", false })
	for _, v := range Variables() {
		if !asked[v.Name] {
			t.Errorf("%s is documented but Load never reads it", v.Name)
		}
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct{ name, val, want string }{
		{"LOG_LEVEL", "loud", "LOG_LEVEL must be"},
		{"LOG_FORMAT", "xml", "LOG_FORMAT must be"},
		{"CONCURRENT_BACKUP_LIMIT", "0", "CONCURRENT_BACKUP_LIMIT must be a positive integer"},
		{"BACKUP_TIMEOUT_MINUTES", "ten", "BACKUP_TIMEOUT_MINUTES must be a positive number of minutes"},
		{"BACKUP_TIMEOUT_MINUTES", "-1", "BACKUP_TIMEOUT_MINUTES must be a positive number of minutes"},
		{"RECONCILE_INTERVAL_SECONDS", "-1", "RECONCILE_INTERVAL_SECONDS must be"},
		{"COMPRESSION", "lz4", "COMPRESSION must be"},
		{"LOCAL_BACKUP_PATH", "backups", "LOCAL_BACKUP_PATH must be an absolute path"},
		{"S3_USE_PATH_STYLE", "yes please", "S3_USE_PATH_STYLE must be"},
		{"ENDPOINT", "minio:9000", "ENDPOINT must be an http"},
		{"WEBHOOK_URL", "hooks.example", "WEBHOOK_URL must be an http"},
		{"WEBHOOK_TIMEOUT_SECONDS", "0", "WEBHOOK_TIMEOUT_SECONDS must be a positive integer"},
		{"WEBHOOK_MAX_RETRIES", "-2", "WEBHOOK_MAX_RETRIES must be a non-negative integer"},
		{"ACCESS_KEY_ID", "only-the-id", "ACCESS_KEY_ID and SECRET_ACCESS_KEY must be set together"},
		// An invalid period stops the agent instead of disabling retention.
		{"GLOBAL_RETENTION_PERIOD", "7 days", "GLOBAL_RETENTION_PERIOD is invalid"},
		{"GLOBAL_RETENTION_PERIOD", "0d", "GLOBAL_RETENTION_PERIOD is invalid"},
		{"GC_DRY_RUN", "maybe", "GC_DRY_RUN must be"},
		{"RETENTION_KEEP_LAST", "0", "RETENTION_KEEP_LAST must be a positive integer"},
		{"GC_SCHEDULE", "sometimes", "GC_SCHEDULE is not a valid schedule"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.val, func(t *testing.T) {
			_, err := Load(env(map[string]string{"PLUGIN_DIR": "/p", tt.name: tt.val}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := Load(env(map[string]string{
		"PLUGIN_DIR":             "/p",
		"ACCESS_KEY_ID_FILE":     write("ak", "AKFILE\n"),
		"SECRET_ACCESS_KEY_FILE": write("sk", "SKFILE\n"),
		"WEBHOOK_SECRET_FILE":    write("wh", "hooksecret\r\n"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.S3.AccessKeyID != "AKFILE" || c.S3.SecretAccessKey != "SKFILE" || c.Webhook.Secret != "hooksecret" {
		t.Errorf("secrets from files = %q %q %q", c.S3.AccessKeyID, c.S3.SecretAccessKey, c.Webhook.Secret)
	}

	_, err = Load(env(map[string]string{"PLUGIN_DIR": "/p", "WEBHOOK_SECRET": "a", "WEBHOOK_SECRET_FILE": write("x", "b")}))
	if err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("both set: err = %v", err)
	}
	_, err = Load(env(map[string]string{"PLUGIN_DIR": "/p", "WEBHOOK_SECRET_FILE": filepath.Join(dir, "missing")}))
	if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRET_FILE cannot be read") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestS3SinkSettings(t *testing.T) {
	s := S3{Bucket: "b", Region: "r", Endpoint: "http://e", AccessKeyID: "a", SecretAccessKey: "s", UsePathStyle: true}
	got := s.SinkSettings()
	want := map[string]string{"bucket": "b", "region": "r", "endpoint": "http://e", "access_key_id": "a", "secret_access_key": "s", "use_path_style": "true"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := (S3{Bucket: "b"}).SinkSettings()["access_key_id"]; ok {
		t.Error("empty keys passed on: the default credential chain must apply")
	}
}
