package postgres

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/labelbackup/label-backup/sdk"
)

// connInfo is a parsed connection string, split into what may be shown (the
// password-free URI handed to libpq tools as --dbname, hosts, user, database)
// and what may not (the passwords, passed through the environment).
//
// The URI is rebuilt from the original text: the host list, the database
// path and every query parameter except the secret ones are kept verbatim,
// so libpq sees exactly the options the user wrote (sslmode, sslrootcert,
// options, target_session_attrs, ...).
type connInfo struct {
	// uri is the connection string without any secret, for --dbname.
	uri string
	// password is the decoded password ("" when none was given).
	password string
	// sslPassword is the decoded sslpassword parameter, if any.
	sslPassword string
	// secrets are scrubbed from tool output: decoded and raw forms.
	secrets []string

	hosts    []string // "host:port" as written (decoded), for logs
	user     string
	database string // effective database name, for logs

	hasConnectTimeout bool
	hasService        bool
}

const (
	schemeLong  = "postgresql://"
	schemeShort = "postgres://"
)

// invalidConn reports a bad connection string. The reason must never
// contain any part of the string itself: a password typed with an
// unescaped "/" or "@" ends up in odd places.
func invalidConn(reason string) error {
	return fmt.Errorf("postgres: invalid connection string: %s: %w", reason, sdk.ErrInvalidArgument)
}

// parseConn parses a postgres:// or postgresql:// URI. dbOverride, when not
// empty, replaces the database named in the URI (path or dbname parameter).
func parseConn(conn, dbOverride string) (*connInfo, error) {
	if strings.TrimSpace(conn) == "" {
		return nil, invalidConn("it is empty")
	}
	if strings.ContainsRune(conn, 0) {
		return nil, invalidConn("it contains a NUL byte")
	}
	if strings.ContainsRune(dbOverride, 0) {
		return nil, fmt.Errorf("postgres: invalid database name: it contains a NUL byte: %w", sdk.ErrInvalidArgument)
	}
	var rest string
	switch lower := strings.ToLower(conn); {
	case strings.HasPrefix(lower, schemeLong):
		rest = conn[len(schemeLong):]
	case strings.HasPrefix(lower, schemeShort):
		rest = conn[len(schemeShort):]
	default:
		return nil, invalidConn("it must be a URI starting with postgresql:// or postgres://")
	}

	// The authority ends at the first "/" or "?". Within it the host list
	// follows the last "@", so a password with a stray "@" still parses.
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	ci := &connInfo{}
	hostspec := authority
	var user string
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		hostspec = authority[at+1:]
		userRaw, pwRaw, hasPw := strings.Cut(authority[:at], ":")
		var err error
		if user, err = decode(userRaw); err != nil {
			return nil, invalidConn("bad percent-encoding in the user name")
		}
		if hasPw {
			// Register the raw form before decoding can fail, so that
			// nothing downstream could ever print it.
			ci.addSecret(pwRaw)
			pw, err := decode(pwRaw)
			if err != nil {
				return nil, invalidConn("bad percent-encoding in the password")
			}
			ci.password = pw
			ci.addSecret(pw)
		}
	}
	ci.user = user
	hosts, err := parseHostspec(hostspec)
	if err != nil {
		return nil, err
	}
	ci.hosts = hosts

	var pathRaw, query string
	hasPath := false
	switch {
	case strings.HasPrefix(tail, "/"):
		hasPath = true
		pathRaw, query, _ = strings.Cut(tail[1:], "?")
	case strings.HasPrefix(tail, "?"):
		query = tail[1:]
	}
	dbPath, err := decode(pathRaw)
	if err != nil {
		return nil, invalidConn("bad percent-encoding in the database name")
	}

	var kept []string
	var dbQuery string
	hasDBQuery, queryHost := false, false
	if query != "" {
		for _, p := range strings.Split(query, "&") {
			if p == "" {
				continue
			}
			k, v, ok := strings.Cut(p, "=")
			if !ok {
				return nil, invalidConn(`a query parameter has no "="`)
			}
			key, err := decode(k)
			if err != nil {
				return nil, invalidConn("bad percent-encoding in a query parameter name")
			}
			switch key {
			case "password", "sslpassword":
				ci.addSecret(v)
				val, err := decode(v)
				if err != nil {
					return nil, invalidConn("bad percent-encoding in the " + key + " parameter")
				}
				ci.addSecret(val)
				if key == "password" {
					// Like libpq: a query parameter wins over the userinfo.
					ci.password = val
				} else {
					ci.sslPassword = val
				}
				continue
			case "dbname":
				if dbOverride != "" {
					continue
				}
				hasDBQuery = true
				if dbQuery, err = decode(v); err != nil {
					return nil, invalidConn("bad percent-encoding in the dbname parameter")
				}
			case "host", "hostaddr":
				if v != "" {
					queryHost = true
				}
			case "user":
				if u, err := decode(v); err == nil {
					ci.user = u
				}
			case "connect_timeout":
				ci.hasConnectTimeout = true
			case "service":
				ci.hasService = true
			}
			kept = append(kept, p)
		}
	}
	if len(hosts) == 0 && !queryHost {
		return nil, invalidConn("it names no host")
	}
	if ci.sslPassword != "" {
		if err := checkServiceValue(ci.sslPassword); err != nil {
			return nil, err
		}
		if ci.hasService {
			return nil, invalidConn("sslpassword cannot be combined with the service parameter")
		}
	}

	switch {
	case dbOverride != "":
		ci.database = dbOverride
	case hasDBQuery:
		ci.database = dbQuery
	case dbPath != "":
		ci.database = dbPath
	default:
		ci.database = ci.user // libpq's default
	}

	var b strings.Builder
	b.WriteString(schemeLong)
	if user != "" {
		b.WriteString(escape(user))
		b.WriteByte('@')
	}
	b.WriteString(hostspec)
	// Always write the "/": without it libpq would look for userinfo up to
	// an "@" inside the query string.
	b.WriteByte('/')
	switch {
	case dbOverride != "":
		b.WriteString(escape(dbOverride))
	case hasPath:
		b.WriteString(pathRaw)
	}
	if len(kept) > 0 {
		b.WriteByte('?')
		b.WriteString(strings.Join(kept, "&"))
	}
	ci.uri = b.String()
	return ci, nil
}

func (ci *connInfo) addSecret(s string) {
	if s != "" {
		ci.secrets = append(ci.secrets, s)
	}
}

// parseHostspec checks a libpq host list: host[:port][,host[:port]]...,
// hosts possibly percent-encoded or IPv6 in brackets. It returns the hosts
// for logging.
func parseHostspec(hs string) ([]string, error) {
	if hs == "" {
		return nil, nil
	}
	var hosts []string
	for _, h := range strings.Split(hs, ",") {
		var host, port string
		if strings.HasPrefix(h, "[") {
			i := strings.IndexByte(h, ']')
			if i < 0 {
				return nil, invalidConn(`an IPv6 host lacks its closing "]"`)
			}
			if host = h[1:i]; host != "" {
				host = "[" + host + "]" // as written, for logs
			}
			after := h[i+1:]
			if after != "" {
				if !strings.HasPrefix(after, ":") {
					return nil, invalidConn(`unexpected text after an IPv6 host`)
				}
				port = after[1:]
			}
		} else {
			var err error
			raw, p, _ := strings.Cut(h, ":")
			if host, err = decode(raw); err != nil {
				return nil, invalidConn("bad percent-encoding in a host name")
			}
			port = p
		}
		if host == "" {
			return nil, invalidConn("a host name is empty")
		}
		if port != "" {
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 {
				return nil, invalidConn("a port is not a number between 1 and 65535")
			}
			host += ":" + port
		}
		hosts = append(hosts, host)
	}
	return hosts, nil
}

// decode undoes libpq's percent-encoding ("+" is not special).
func decode(s string) (string, error) {
	if !strings.ContainsRune(s, '%') {
		return s, nil
	}
	out, err := url.PathUnescape(s)
	if err != nil {
		// url's error quotes the input: never pass it on.
		return "", fmt.Errorf("bad percent-encoding")
	}
	if strings.ContainsRune(out, 0) {
		return "", fmt.Errorf("encoded NUL byte")
	}
	return out, nil
}

// escape percent-encodes everything but RFC 3986's unreserved characters.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// checkServiceValue checks that v survives a line of a libpq service file,
// which is how sslpassword reaches the tools without showing in argv.
func checkServiceValue(v string) error {
	if strings.ContainsAny(v, "\r\n") || strings.TrimRight(v, " \t\v\f") != v || len(v) > 200 {
		return invalidConn("the sslpassword cannot be passed safely (newline, trailing space or over 200 bytes)")
	}
	return nil
}

// hostList is the hosts for logs and errors.
func (ci *connInfo) hostList() string {
	if len(ci.hosts) == 0 {
		return "(host from query)"
	}
	return strings.Join(ci.hosts, ",")
}

// where names the target in errors: never a secret.
func (ci *connInfo) where() string {
	return fmt.Sprintf("database %q on %s", ci.database, ci.hostList())
}

// env builds the tools' extra environment: the password and the connect
// timeout. When the URI carries an sslpassword it is written to a private
// libpq service file; cleanup removes it and must always be called.
func (ci *connInfo) env() (env []string, cleanup func(), err error) {
	cleanup = func() {}
	if ci.password != "" {
		env = append(env, "PGPASSWORD="+ci.password)
	}
	if !ci.hasConnectTimeout {
		env = append(env, "PGCONNECT_TIMEOUT=10")
	}
	if ci.sslPassword != "" {
		dir, err := os.MkdirTemp("", "label-backup-pg-")
		if err != nil {
			return nil, cleanup, fmt.Errorf("postgres: creating a service file: %w", err)
		}
		cleanup = func() { os.RemoveAll(dir) }
		file := filepath.Join(dir, "pg_service.conf")
		content := "[labelbackup]\nsslpassword=" + ci.sslPassword + "\n"
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			cleanup()
			return nil, func() {}, fmt.Errorf("postgres: writing a service file: %w", err)
		}
		env = append(env, "PGSERVICEFILE="+file, "PGSERVICE=labelbackup")
	}
	return env, cleanup, nil
}

func (ci *connInfo) dbnameArg() string { return "--dbname=" + ci.uri }

// psqlArgs is the connection check.
func (ci *connInfo) psqlArgs() []string {
	return []string{"-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "--no-password",
		ci.dbnameArg(), "-c", "SHOW server_version"}
}

// dumpArgs writes an uncompressed custom-format archive to stdout: the host
// compresses.
func (ci *connInfo) dumpArgs() []string {
	return []string{"--format=custom", "--compress=0", "--no-password", ci.dbnameArg()}
}

// restoreOptions are the Target.Options a restore understands.
type restoreOptions struct {
	clean   bool
	noOwner bool
}

func parseRestoreOptions(opts map[string]string) (restoreOptions, error) {
	var ro restoreOptions
	for _, o := range []struct {
		key string
		dst *bool
	}{{"clean", &ro.clean}, {"no_owner", &ro.noOwner}} {
		v, ok := opts[o.key]
		if !ok || v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return ro, fmt.Errorf("postgres: option %s=%q is not a boolean: %w", o.key, v, sdk.ErrInvalidArgument)
		}
		*o.dst = b
	}
	return ro, nil
}

// restoreArgs reads a custom-format archive from stdin.
func (ci *connInfo) restoreArgs(ro restoreOptions) []string {
	args := []string{"--no-password", "--exit-on-error"}
	if ro.clean {
		args = append(args, "--clean", "--if-exists")
	}
	if ro.noOwner {
		args = append(args, "--no-owner")
	}
	return append(args, ci.dbnameArg())
}
