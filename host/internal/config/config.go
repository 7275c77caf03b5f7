// Package config reads the agent's settings from its environment. Every
// variable documented in the README is read here, validated, and given its
// documented default; an invalid value is an error, never silently ignored.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/labelbackup/label-backup/host/internal/encrypt"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/period"
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
	// ShutdownGrace is how long running backups may finish after SIGTERM
	// before they are cancelled.
	ShutdownGrace time.Duration
	// Compression is the default for containers without backup.compression.
	Compression string

	S3         S3
	Webhook    Webhook
	Retention  Retention
	Encryption encrypt.Settings
}

// Retention configures pruning.
type Retention struct {
	// Period applies to containers without backup.retention.
	Period time.Duration
	// KeepLast newest successful backups are always kept (at least 1).
	KeepLast int
	DryRun   bool
	// Schedule is when the sweep over every job runs, besides the prune
	// after each successful backup.
	Schedule string
	// OrphanPeriod, when set, lets the sweep prune backups of containers
	// that no longer exist (zero: they are kept).
	OrphanPeriod time.Duration
}

// S3 configures the remote (S3-compatible) destination.
type S3 struct {
	Bucket          string
	Region          string
	Endpoint        string
	AccessKeyID     string
	SecretAccessKey string // secret
	UsePathStyle    bool
}

// Configured reports whether a bucket was given.
func (s S3) Configured() bool { return s.Bucket != "" }

// SinkSettings are the settings the s3 sink plugin takes.
func (s S3) SinkSettings() map[string]string {
	m := map[string]string{
		"bucket":         s.Bucket,
		"region":         s.Region,
		"use_path_style": strconv.FormatBool(s.UsePathStyle),
	}
	if s.Endpoint != "" {
		m["endpoint"] = s.Endpoint
	}
	if s.AccessKeyID != "" {
		m["access_key_id"] = s.AccessKeyID
		m["secret_access_key"] = s.SecretAccessKey
	}
	return m
}

// Webhook configures notifications.
type Webhook struct {
	// URL is the global receiver; backup.webhook overrides it per container.
	URL        string
	Secret     string // secret: the HMAC-SHA256 key
	Timeout    time.Duration
	MaxRetries int
}

// Variable documents one environment variable.
type Variable struct {
	Name, Default, Doc string
}

// Variables lists every variable Load reads, in documentation order.
func Variables() []Variable {
	return []Variable{
		{"CONFIG_FILE", "", "file of KEY=VALUE lines overriding the environment; SIGHUP re-reads it"},
		{"LOG_LEVEL", "info", "logging level: debug, info, warn, error"},
		{"LOG_FORMAT", "text", `log format: "text" or "json"`},
		{"HTTP_ADDR", ":8080", "listen address of the HTTP API"},
		{"PLUGIN_DIR", "directory of the label-backup binary", "where label-backup-plugin-<name> binaries are found"},
		{"LOCAL_BACKUP_PATH", "/backups", "base path for local backups"},
		{"RECONCILE_INTERVAL_SECONDS", "10", "how often the container list is re-read, besides Docker events"},
		{"CONCURRENT_BACKUP_LIMIT", "20", "maximum backups running at once; more wait in a queue"},
		{"BACKUP_TIMEOUT_MINUTES", "30", "timeout of one backup (fractions allowed)"},
		{"SHUTDOWN_GRACE_SECONDS", "5", "on SIGTERM, how long running backups may finish before they are cancelled (keep under Docker's 10 s stop timeout, or raise docker stop -t)"},
		{"COMPRESSION", "gzip", "default compression: gzip, zstd or none"},
		{"BUCKET_NAME", "", "S3 bucket (required for backup.dest=remote/s3)"},
		{"REGION", "us-east-1", "S3 region"},
		{"ENDPOINT", "", "custom S3 endpoint, e.g. http://minio:9000"},
		{"ACCESS_KEY_ID", "", "S3 access key (also ACCESS_KEY_ID_FILE); empty: the default AWS credential chain"},
		{"SECRET_ACCESS_KEY", "", "S3 secret key (also SECRET_ACCESS_KEY_FILE)"},
		{"S3_USE_PATH_STYLE", "false", "use path-style S3 addressing"},
		{"GLOBAL_RETENTION_PERIOD", "7d", "retention period (7d, 24h, 90m); backup.retention overrides it"},
		{"GC_DRY_RUN", "false", "log what retention would delete, delete nothing"},
		{"RETENTION_KEEP_LAST", "3", "newest successful backups per container that retention never deletes (at least 1)"},
		{"GC_SCHEDULE", "@daily", "cron schedule of the retention sweep over every container"},
		{"ORPHAN_RETENTION_PERIOD", "", "when set (e.g. 90d), the sweep also prunes backups of containers that no longer exist, under the prefixes of current containers, by this period (the newest RETENTION_KEEP_LAST stay); unset: kept forever"},
		{"GPG_PUBLIC_KEY_PATH", "", "OpenPGP public key (file) every backup is encrypted to, after compression"},
		{"AGE_RECIPIENTS", "", "age recipients (age1...) every backup is encrypted to, instead of GPG"},
		{"AGE_RECIPIENTS_FILE", "", "file of age recipients, one per line"},
		{"WEBHOOK_URL", "", "global webhook URL"},
		{"WEBHOOK_SECRET", "", "HMAC-SHA256 signing secret (also WEBHOOK_SECRET_FILE)"},
		{"WEBHOOK_TIMEOUT_SECONDS", "10", "timeout of one webhook attempt"},
		{"WEBHOOK_MAX_RETRIES", "3", "retries after a failed webhook attempt, with exponential backoff"},
	}
}

// Lookup is os.LookupEnv's shape, so tests can pass a map.
type Lookup func(string) (string, bool)

// FromEnv reads the process environment.
func FromEnv() (Config, error) { return Load(os.LookupEnv) }

// Load reads and validates every variable.
func Load(env Lookup) (Config, error) {
	r := reader{env: env}
	r.str(FileVar, "") // documented here; read by FromEnvAndFile
	c := Config{
		HTTPAddr:              r.str("HTTP_ADDR", ":8080"),
		LocalBackupPath:       r.str("LOCAL_BACKUP_PATH", "/backups"),
		ReconcileInterval:     time.Duration(r.positiveInt("RECONCILE_INTERVAL_SECONDS", 10)) * time.Second,
		ConcurrentBackupLimit: r.positiveInt("CONCURRENT_BACKUP_LIMIT", 20),
		BackupTimeout:         r.minutes("BACKUP_TIMEOUT_MINUTES", 30),
		ShutdownGrace:         time.Duration(r.nonNegativeInt("SHUTDOWN_GRACE_SECONDS", 5)) * time.Second,
		S3: S3{
			Bucket:          r.str("BUCKET_NAME", ""),
			Region:          r.str("REGION", "us-east-1"),
			Endpoint:        r.str("ENDPOINT", ""),
			AccessKeyID:     r.secret("ACCESS_KEY_ID"),
			SecretAccessKey: r.secret("SECRET_ACCESS_KEY"),
			UsePathStyle:    r.boolean("S3_USE_PATH_STYLE", false),
		},
		Retention: Retention{
			Period:       r.period("GLOBAL_RETENTION_PERIOD", 7*24*time.Hour),
			KeepLast:     r.positiveInt("RETENTION_KEEP_LAST", 3),
			DryRun:       r.boolean("GC_DRY_RUN", false),
			Schedule:     r.str("GC_SCHEDULE", "@daily"),
			OrphanPeriod: r.period("ORPHAN_RETENTION_PERIOD", 0),
		},
		Encryption: encrypt.Settings{
			GPGPublicKeyPath:  r.str("GPG_PUBLIC_KEY_PATH", ""),
			AgeRecipients:     r.str("AGE_RECIPIENTS", ""),
			AgeRecipientsFile: r.str("AGE_RECIPIENTS_FILE", ""),
		},
		Webhook: Webhook{
			URL:        r.str("WEBHOOK_URL", ""),
			Secret:     r.secret("WEBHOOK_SECRET"),
			Timeout:    time.Duration(r.positiveInt("WEBHOOK_TIMEOUT_SECONDS", 10)) * time.Second,
			MaxRetries: r.nonNegativeInt("WEBHOOK_MAX_RETRIES", 3),
		},
	}
	if _, err := c.Encryption.Load(); err != nil {
		r.errs = append(r.errs, err.Error()) // names the variable itself
	}
	if _, err := labels.ParseCron(c.Retention.Schedule); err != nil {
		r.fail("GC_SCHEDULE", "is not a valid schedule: %v", err)
	}
	if (c.S3.AccessKeyID == "") != (c.S3.SecretAccessKey == "") {
		r.fail("ACCESS_KEY_ID", "and SECRET_ACCESS_KEY must be set together (or neither, for the default AWS credential chain)")
	}
	if c.S3.Endpoint != "" {
		if u, err := url.Parse(c.S3.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.fail("ENDPOINT", "must be an http:// or https:// URL")
		}
	}
	if c.Webhook.URL != "" {
		if u, err := url.Parse(c.Webhook.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.fail("WEBHOOK_URL", "must be an http:// or https:// URL")
		}
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

// minutes reads a positive number of minutes; fractions are allowed
// ("0.5" is 30 seconds).
func (r *reader) minutes(name string, def float64) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return time.Duration(def * float64(time.Minute))
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > 1e6 {
		r.fail(name, "must be a positive number of minutes, got %q", v)
		return time.Duration(def * float64(time.Minute))
	}
	return time.Duration(f * float64(time.Minute))
}

func (r *reader) nonNegativeInt(name string, def int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		r.fail(name, "must be a non-negative integer, got %q", v)
		return def
	}
	return n
}

func (r *reader) boolean(name string, def bool) bool {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, `must be "true" or "false", got %q`, v)
		return def
	}
	return b
}

// secret reads name, or the file named by name_FILE (Docker and Kubernetes
// secrets), never both. Values are never echoed in errors.
func (r *reader) secret(name string) string {
	v := r.str(name, "")
	file := r.str(name+"_FILE", "")
	switch {
	case v != "" && file != "":
		r.fail(name, "and %s_FILE are both set; set one", name)
		return ""
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			r.fail(name+"_FILE", "cannot be read: %v", errors.Unwrap(err))
			return ""
		}
		return strings.TrimRight(string(b), "\r\n")
	}
	return v
}

// period reads a retention period. An invalid value is an error: retention
// must never be silently disabled.
func (r *reader) period(name string, def time.Duration) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	d, err := period.Parse(v)
	if err != nil {
		r.fail(name, "is invalid: %v", err)
		return def
	}
	return d
}
