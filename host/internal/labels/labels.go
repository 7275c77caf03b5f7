// Package labels decodes a container's backup.* labels into a Spec. It is a
// pure function of the label map: no Docker, no plugins, no clock.
package labels

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/labelbackup/label-backup/host/internal/period"
)

// Prefix is the namespace of every label this agent reads.
const Prefix = "backup."

// Label keys.
const (
	Enabled     = "backup.enabled"
	Type        = "backup.type"
	Cron        = "backup.cron"
	Conn        = "backup.conn"
	Database    = "backup.database"
	Dest        = "backup.dest"
	NamePrefix  = "backup.prefix"
	Retention   = "backup.retention"
	Webhook     = "backup.webhook"
	Compression = "backup.compression"
	Keep        = "backup.keep"
	Mode        = "backup.mode"
)

// known lists every label key with a one-line description; the order is the
// documentation order.
var known = []struct{ key, doc string }{
	{Enabled, `"true" or "false": master switch`},
	{Type, "database type: postgres, mysql, mongodb, redis (or any installed dumper plugin)"},
	{Cron, "cron expression: 5 fields, 6 with seconds, or a descriptor like @daily"},
	{Conn, "connection string/URI of the database (secret); ${VAR} is replaced by the container's variable VAR; when absent, the plugin derives it from the container's environment as the official images define it (POSTGRES_*, MARIADB_*/MYSQL_*, MONGO_INITDB_ROOT_*, REDIS_PASSWORD or --requirepass, also as _FILE variants) and reaches the container at its network address"},
	{Database, "database name, overriding the one in backup.conn"},
	{Dest, `destination: "local" (default), "remote" or "s3"`},
	{NamePrefix, "path prefix of backup objects"},
	{Retention, "retention period overriding GLOBAL_RETENTION_PERIOD (7d, 24h, 90m)"},
	{Webhook, "webhook URL overriding WEBHOOK_URL"},
	{Compression, `compression: "gzip" (default), "zstd" or "none"`},
	{Keep, "newest successful backups retention always keeps, overriding RETENTION_KEEP_LAST"},
	{Mode, `"network" (default: the dump tool connects over the network) or "exec" (it runs inside the database container through Docker exec)`},
}

// Modes.
const (
	ModeNetwork = "network"
	ModeExec    = "exec"
)

// Destinations.
const (
	DestLocal  = "local"
	DestRemote = "remote"
)

// Spec is what a container asks for.
type Spec struct {
	Enabled  bool
	Type     string
	Cron     string
	Conn     string // secret: never log or show it
	Database string
	// Dest is DestLocal or DestRemote ("s3" is read as remote).
	Dest   string
	Prefix string
	// Retention is zero when the global period applies.
	Retention time.Duration
	Webhook   string // may carry a token: show it only through RedactURL
	// Compression is empty when the global setting applies.
	Compression string
	// Keep is zero when the global RETENTION_KEEP_LAST applies.
	Keep int
	// Mode is ModeNetwork or ModeExec.
	Mode string
	// Warnings are problems that do not stop the container's backups, such
	// as unknown backup.* keys.
	Warnings []string
}

// Problem is one thing wrong with one label.
type Problem struct {
	Label   string `json:"label"`
	Message string `json:"message"`
}

// Error lists every problem found in a container's labels. Messages never
// contain the value of backup.conn or the path of backup.webhook.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Label + ": " + p.Message
	}
	return "invalid labels: " + strings.Join(parts, "; ")
}

var (
	typeRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	prefixRE    = regexp.MustCompile(`^[A-Za-z0-9._/-]*$`)
	typeAliases = map[string]string{
		"postgresql": "postgres",
		"pg":         "postgres",
		"mariadb":    "mysql",
		"mongo":      "mongodb",
	}
	compressions = map[string]bool{"gzip": true, "zstd": true, "none": true}
	cronParser   = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
)

// ParseCron parses a schedule: 5 fields, 6 with leading seconds, or a
// descriptor (@daily, @every 1h); a CRON_TZ= or TZ= prefix sets its zone.
func ParseCron(expr string) (cron.Schedule, error) {
	return cronParser.Parse(strings.TrimSpace(expr))
}

// Decode reads a container's labels. A container that does not set
// backup.enabled=true decodes to a disabled Spec without error (whatever
// else it carries); an enabled one must be fully valid.
func Decode(l map[string]string) (Spec, error) {
	var s Spec
	var probs []Problem
	bad := func(label, format string, args ...any) {
		probs = append(probs, Problem{Label: label, Message: fmt.Sprintf(format, args...)})
	}

	switch v := strings.ToLower(strings.TrimSpace(l[Enabled])); v {
	case "true":
		s.Enabled = true
	case "false", "":
		return Spec{}, nil
	default:
		return Spec{}, &Error{Problems: []Problem{{Enabled, fmt.Sprintf("must be \"true\" or \"false\", got %q", l[Enabled])}}}
	}

	s.Type = strings.ToLower(strings.TrimSpace(l[Type]))
	if a, ok := typeAliases[s.Type]; ok {
		s.Type = a
	}
	switch {
	case s.Type == "":
		bad(Type, "is required (postgres, mysql, mongodb or redis)")
	case !typeRE.MatchString(s.Type):
		bad(Type, "%q is not a valid type name", l[Type])
	}

	s.Cron = strings.TrimSpace(l[Cron])
	if s.Cron == "" {
		bad(Cron, `is required (e.g. "0 2 * * *" or "@daily")`)
	} else if _, err := ParseCron(s.Cron); err != nil {
		bad(Cron, "%q is not a valid schedule: %v", s.Cron, err)
	}

	switch m := strings.ToLower(strings.TrimSpace(l[Mode])); m {
	case "", ModeNetwork:
		s.Mode = ModeNetwork
	case ModeExec:
		s.Mode = ModeExec
	default:
		bad(Mode, `must be "network" or "exec", got %q`, l[Mode])
	}

	// An absent backup.conn lets the plugin derive the connection from the
	// container's environment (zero-config: the official images'
	// variables); an empty one is a mistake (an unset variable in a
	// compose file, say), never a request for that.
	rawConn, hasConn := l[Conn]
	s.Conn = strings.TrimSpace(rawConn)
	if hasConn && s.Conn == "" {
		bad(Conn, "is empty: set the database's connection string, or remove the label to derive it from the container's environment")
	}

	s.Database = strings.TrimSpace(l[Database])
	if strings.ContainsAny(s.Database, "\x00/\\") {
		bad(Database, "%q contains a forbidden character", s.Database)
	}

	switch d := strings.ToLower(strings.TrimSpace(l[Dest])); d {
	case "", DestLocal:
		s.Dest = DestLocal
	case DestRemote, "s3":
		s.Dest = DestRemote
	default:
		bad(Dest, `must be "local", "remote" or "s3", got %q`, l[Dest])
	}

	s.Prefix = strings.Trim(strings.TrimSpace(l[NamePrefix]), "/")
	switch {
	case !prefixRE.MatchString(s.Prefix):
		bad(NamePrefix, "%q may contain only letters, digits, '.', '_', '-' and '/'", l[NamePrefix])
	case s.Prefix != "" && (path.Clean(s.Prefix) != s.Prefix || s.Prefix == "." || hasDotDot(s.Prefix)):
		bad(NamePrefix, "%q must be a clean relative path without '.' or '..' segments", l[NamePrefix])
	}

	if v := strings.TrimSpace(l[Retention]); v != "" {
		d, err := period.Parse(v)
		if err != nil {
			bad(Retention, "%v", err)
		}
		s.Retention = d
	}

	if v := strings.TrimSpace(l[Webhook]); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(Webhook, "must be an http:// or https:// URL")
		}
		s.Webhook = v
	}

	if v := strings.ToLower(strings.TrimSpace(l[Compression])); v != "" {
		if !compressions[v] {
			bad(Compression, `must be "gzip", "zstd" or "none", got %q`, l[Compression])
		}
		s.Compression = v
	}

	if v := strings.TrimSpace(l[Keep]); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			bad(Keep, "must be a whole number of at least 1, got %q", l[Keep])
		}
		s.Keep = n
	}

	s.Warnings = unknownKeys(l)
	if len(probs) > 0 {
		return Spec{}, &Error{Problems: probs}
	}
	return s, nil
}

func hasDotDot(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." || seg == "." {
			return true
		}
	}
	return false
}

func unknownKeys(l map[string]string) []string {
	var out []string
	for k := range l {
		if !strings.HasPrefix(k, Prefix) {
			continue
		}
		if !isKnown(k) {
			out = append(out, fmt.Sprintf("unknown label %q is ignored", k))
		}
	}
	sort.Strings(out)
	return out
}

func isKnown(k string) bool {
	for _, x := range known {
		if x.key == k {
			return true
		}
	}
	return false
}

// Keys documents every label: key and description, in documentation order.
func Keys() [][2]string {
	out := make([][2]string, len(known))
	for i, x := range known {
		out[i] = [2]string{x.key, x.doc}
	}
	return out
}

// ConnDatabase is the database a connection URI names in its path ("" when
// it names none or is no URI).
func ConnDatabase(conn string) string {
	u, err := url.Parse(conn)
	if err != nil {
		return ""
	}
	return strings.Trim(u.Path, "/")
}

// RedactURL shows a URL without its credentials, path or query, which may
// carry tokens (Slack webhook URLs do).
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "[redacted]"
	}
	return u.Scheme + "://" + u.Host + "/…"
}
