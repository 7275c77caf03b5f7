package config

import (
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
	}
	if c != want {
		t.Errorf("defaults =\n %+v\nwant\n %+v", c, want)
	}
}

func TestEveryVariableIsRead(t *testing.T) {
	c, err := Load(env(map[string]string{
		"LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json", "HTTP_ADDR": "127.0.0.1:9999", "PLUGIN_DIR": "/p",
		"LOCAL_BACKUP_PATH": "/data/b", "RECONCILE_INTERVAL_SECONDS": "3", "CONCURRENT_BACKUP_LIMIT": "2",
		"BACKUP_TIMEOUT_MINUTES": "5", "COMPRESSION": "zstd",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		LogLevel: hclog.Debug, LogJSON: true, HTTPAddr: "127.0.0.1:9999", PluginDir: "/p", LocalBackupPath: "/data/b",
		ReconcileInterval: 3 * time.Second, ConcurrentBackupLimit: 2, BackupTimeout: 5 * time.Minute, Compression: "zstd",
	}
	if c != want {
		t.Errorf("config =\n %+v\nwant\n %+v", c, want)
	}
	if len(Variables()) != 9 {
		t.Errorf("Variables() documents %d variables; update it with Load", len(Variables()))
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct{ name, val, want string }{
		{"LOG_LEVEL", "loud", "LOG_LEVEL must be"},
		{"LOG_FORMAT", "xml", "LOG_FORMAT must be"},
		{"CONCURRENT_BACKUP_LIMIT", "0", "CONCURRENT_BACKUP_LIMIT must be a positive integer"},
		{"BACKUP_TIMEOUT_MINUTES", "ten", "BACKUP_TIMEOUT_MINUTES must be a positive integer"},
		{"RECONCILE_INTERVAL_SECONDS", "-1", "RECONCILE_INTERVAL_SECONDS must be"},
		{"COMPRESSION", "lz4", "COMPRESSION must be"},
		{"LOCAL_BACKUP_PATH", "backups", "LOCAL_BACKUP_PATH must be an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(map[string]string{"PLUGIN_DIR": "/p", tt.name: tt.val}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
