// Package config reads the agent's settings from its environment. Every
// variable documented in the README is read here, validated, and given its
// documented default; an invalid value is an error, never silently ignored.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config is the agent's configuration.
type Config struct {
	LogLevel  hclog.Level
	LogJSON   bool
	HTTPAddr  string
	PluginDir string
	// LocalBackupPath is the base directory of the local sink.
	LocalBackupPath       string
	ReconcileInterval     time.Duration
	ConcurrentBackupLimit int
	BackupTimeout         time.Duration
	// Compression is the default for containers without backup.compression.
	Compression string
}

// Variable documents one environment variable.
type Variable struct {
	Name, Default, Doc string
}

// Variables lists every variable Load reads, in documentation order.
func Variables() []Variable {
	return []Variable{
		{"LOG_LEVEL", "info", "logging level: debug, info, warn, error"},
		{"LOG_FORMAT", "text", `log format: "text" or "json"`},
		{"HTTP_ADDR", ":8080", "listen address of the HTTP API"},
		{"PLUGIN_DIR", "directory of the label-backup binary", "where label-backup-plugin-<name> binaries are found"},
		{"LOCAL_BACKUP_PATH", "/backups", "base path for local backups"},
		{"RECONCILE_INTERVAL_SECONDS", "10", "how often the container list is re-read, besides Docker events"},
		{"CONCURRENT_BACKUP_LIMIT", "20", "maximum backups running at once; more wait in a queue"},
		{"BACKUP_TIMEOUT_MINUTES", "30", "timeout of one backup"},
		{"COMPRESSION", "gzip", "default compression: gzip, zstd or none"},
	}
}

// Lookup is os.LookupEnv's shape, so tests can pass a map.
type Lookup func(string) (string, bool)

// FromEnv reads the process environment.
func FromEnv() (Config, error) { return Load(os.LookupEnv) }

// Load reads and validates every variable.
func Load(env Lookup) (Config, error) {
	r := reader{env: env}
	c := Config{
		HTTPAddr:              r.str("HTTP_ADDR", ":8080"),
		LocalBackupPath:       r.str("LOCAL_BACKUP_PATH", "/backups"),
		ReconcileInterval:     time.Duration(r.positiveInt("RECONCILE_INTERVAL_SECONDS", 10)) * time.Second,
		ConcurrentBackupLimit: r.positiveInt("CONCURRENT_BACKUP_LIMIT", 20),
		BackupTimeout:         time.Duration(r.positiveInt("BACKUP_TIMEOUT_MINUTES", 30)) * time.Minute,
	}

	switch lvl := strings.ToLower(r.str("LOG_LEVEL", "info")); lvl {
	case "debug", "info", "warn", "error", "trace":
		c.LogLevel = hclog.LevelFromString(lvl)
	default:
		r.fail("LOG_LEVEL", "must be debug, info, warn or error, got %q", lvl)
	}
	switch f := strings.ToLower(r.str("LOG_FORMAT", "text")); f {
	case "text":
	case "json":
		c.LogJSON = true
	default:
		r.fail("LOG_FORMAT", `must be "text" or "json", got %q`, f)
	}
	switch c.Compression = strings.ToLower(r.str("COMPRESSION", "gzip")); c.Compression {
	case "gzip", "zstd", "none":
	default:
		r.fail("COMPRESSION", `must be "gzip", "zstd" or "none", got %q`, c.Compression)
	}
	if !filepath.IsAbs(c.LocalBackupPath) {
		r.fail("LOCAL_BACKUP_PATH", "must be an absolute path, got %q", c.LocalBackupPath)
	}

	c.PluginDir = r.str("PLUGIN_DIR", "")
	if c.PluginDir == "" {
		exe, err := os.Executable()
		if err != nil {
			r.fail("PLUGIN_DIR", "not set and the agent's own path is unknown: %v", err)
		}
		c.PluginDir = filepath.Dir(exe)
	}

	if len(r.errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration: %s", strings.Join(r.errs, "; "))
	}
	return c, nil
}

type reader struct {
	env  Lookup
	errs []string
}

func (r *reader) fail(name, format string, args ...any) {
	r.errs = append(r.errs, name+" "+fmt.Sprintf(format, args...))
}

func (r *reader) str(name, def string) string {
	if v, ok := r.env(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

func (r *reader) positiveInt(name string, def int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		r.fail(name, "must be a positive integer, got %q", v)
		return def
	}
	return n
}
