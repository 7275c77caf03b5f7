package mysql

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labelbackup/label-backup/sdk"
)

// TLS modes of the ssl-mode (or sslmode) query parameter, named as MySQL's
// --ssl-mode names them.
const (
	sslDisabled       = "DISABLED"
	sslPreferred      = "PREFERRED"
	sslRequired       = "REQUIRED"
	sslVerifyCA       = "VERIFY_CA"
	sslVerifyIdentity = "VERIFY_IDENTITY"
)

const (
	schemeMySQL   = "mysql://"
	schemeMariaDB = "mariadb://"
	defaultPort   = 3306
	// defaultConnectTimeout bounds the connection check (seconds).
	defaultConnectTimeout = 10
	// maxValueLen bounds every value written to the option file: the
	// tools read option files in lines of at most 4 KiB.
	maxValueLen = 1024
	// maxDatabaseLen is MySQL's and MariaDB's limit on database names
	// (characters).
	maxDatabaseLen = 64
)

// connInfo is a parsed connection URI. None of it reaches argv: the tools
// get user, password, host, port and TLS settings from a private option
// file (see optionFile); only the database name, which is not secret, is an
// argument.
type connInfo struct {
	user        string
	password    string
	hasPassword bool
	host        string // decoded; an IPv6 address without brackets
	port        int
	// database is the effective database: Target.Database, else the URI's
	// path. Empty means every database.
	database       string
	tls            tlsSettings
	connectTimeout int // seconds
	// secrets are scrubbed from tool output: decoded and raw forms.
	secrets []string
	// socket: connect over the server's default Unix socket (exec mode
	// with a derived connection); host and port are unused.
	socket bool
}

// tlsSettings are the TLS query parameters.
type tlsSettings struct {
	mode          string // "" (the tool's default) or an ssl* constant
	ca, cert, key string
}

// needsEncryption reports whether the mode forbids a plain-text connection.
func (s tlsSettings) needsEncryption() bool {
	switch s.mode {
	case sslRequired, sslVerifyCA, sslVerifyIdentity:
		return true
	}
	return false
}

// invalidConn reports a bad connection string. The reason must never
// contain any part of the string but parameter names: a password typed
// with an unescaped "/", "?" or "@" ends up in odd places.
func invalidConn(reason string) error {
	return fmt.Errorf("mysql: invalid connection string: %s: %w", reason, sdk.ErrInvalidArgument)
}

// safeName matches parameter names and values that may be quoted in errors:
// short identifiers that cannot be a fragment of a password with odd
// characters.
var safeName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,39}$`)

func quoteIfSafe(s string) string {
	if safeName.MatchString(s) {
		return strconv.Quote(s)
	}
	return "(not shown)"
}

// parseConn parses a mysql:// or mariadb:// URI:
//
//	mysql://[user[:password]@]host[:port][/database][?param=value&...]
//
// dbOverride, when not empty, replaces the URI's database.
func parseConn(conn, dbOverride string) (*connInfo, error) {
	if strings.TrimSpace(conn) == "" {
		return nil, invalidConn("it is empty")
	}
	if strings.ContainsRune(conn, 0) {
		return nil, invalidConn("it contains a NUL byte")
	}
	if err := checkDatabaseName(dbOverride); err != nil {
		return nil, err
	}
	var rest string
	switch lower := strings.ToLower(conn); {
	case strings.HasPrefix(lower, schemeMySQL):
		rest = conn[len(schemeMySQL):]
	case strings.HasPrefix(lower, schemeMariaDB):
		rest = conn[len(schemeMariaDB):]
	default:
		return nil, invalidConn("it must be a URI starting with mysql:// or mariadb://")
	}

	// The authority ends at the first "/" or "?". Within it the host
	// follows the last "@", so a password with a stray "@" still parses.
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	ci := &connInfo{port: defaultPort, connectTimeout: defaultConnectTimeout}
	hostport := authority
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		hostport = authority[at+1:]
		userRaw, pwRaw, hasPw := strings.Cut(authority[:at], ":")
		if hasPw {
			// Register the raw form before decoding can fail, so that
			// nothing downstream could ever print it.
			ci.addSecret(pwRaw)
			pw, err := decode(pwRaw)
			if err != nil {
				return nil, invalidConn("bad percent-encoding in the password")
			}
			ci.password, ci.hasPassword = pw, true
			ci.addSecret(pw)
		}
		user, err := decode(userRaw)
		if err != nil {
			return nil, invalidConn("bad percent-encoding in the user name")
		}
		ci.user = user
	}
	if err := ci.parseHostPort(hostport); err != nil {
		return nil, err
	}

	var pathRaw, query string
	switch {
	case strings.HasPrefix(tail, "/"):
		pathRaw, query, _ = strings.Cut(tail[1:], "?")
	case strings.HasPrefix(tail, "?"):
		query = tail[1:]
	}
	dbPath, err := decode(pathRaw)
	if err != nil {
		return nil, invalidConn("bad percent-encoding in the database name")
	}
	if err := checkDatabaseName(dbPath); err != nil {
		return nil, err
	}
	if err := ci.parseQuery(query); err != nil {
		return nil, err
	}
	ci.database = dbPath
	if dbOverride != "" {
		ci.database = dbOverride
	}
	for _, v := range []struct{ what, v string }{
		{"the user name", ci.user}, {"the password", ci.password}, {"the host", ci.host},
		{"ssl-ca", ci.tls.ca}, {"ssl-cert", ci.tls.cert}, {"ssl-key", ci.tls.key},
	} {
		if len(v.v) > maxValueLen {
			return nil, invalidConn(fmt.Sprintf("%s is longer than %d bytes", v.what, maxValueLen))
		}
	}
	return ci, nil
}

// checkDatabaseName rejects names no server accepts, so they never reach a
// tool's argv.
func checkDatabaseName(db string) error {
	switch {
	case strings.ContainsRune(db, 0):
		return fmt.Errorf("mysql: invalid database name: it contains a NUL byte: %w", sdk.ErrInvalidArgument)
	case !utf8.ValidString(db):
		return fmt.Errorf("mysql: invalid database name: it is not valid UTF-8: %w", sdk.ErrInvalidArgument)
	case utf8.RuneCountInString(db) > maxDatabaseLen:
		return fmt.Errorf("mysql: invalid database name: it is longer than %d characters: %w", maxDatabaseLen, sdk.ErrInvalidArgument)
	}
	return nil
}

// parseHostPort reads host[:port], the host a name, an IPv4 address or an
// IPv6 address in brackets, possibly percent-encoded.
func (ci *connInfo) parseHostPort(hp string) error {
	if hp == "" {
		return invalidConn("it names no host")
	}
	var hostRaw, port string
	if strings.HasPrefix(hp, "[") {
		i := strings.IndexByte(hp, ']')
		if i < 0 {
			return invalidConn(`an IPv6 host lacks its closing "]"`)
		}
		hostRaw = hp[1:i]
		if after := hp[i+1:]; after != "" {
			if !strings.HasPrefix(after, ":") {
				return invalidConn("unexpected text after an IPv6 host")
			}
			port = after[1:]
			if port == "" {
				return invalidConn("the port is empty")
			}
		}
		if net.ParseIP(hostRaw) == nil {
			return invalidConn("the host in brackets is not an IPv6 address")
		}
	} else {
		if strings.Contains(hp, ",") {
			return invalidConn("only one host is supported")
		}
		if strings.Count(hp, ":") > 1 {
			return invalidConn("an IPv6 address must be written in brackets, like [::1]:3306")
		}
		var hasPort bool
		hostRaw, port, hasPort = strings.Cut(hp, ":")
		if hasPort && port == "" {
			return invalidConn("the port is empty")
		}
	}
	host, err := decode(hostRaw)
	if err != nil {
		return invalidConn("bad percent-encoding in the host name")
	}
	switch {
	case host == "":
		return invalidConn("the host name is empty")
	case strings.ContainsAny(host, "/\\"):
		return invalidConn("the host name contains a slash (Unix sockets are not supported: use host:port)")
	case strings.IndexFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return invalidConn("the host name contains spaces or control characters")
	}
	ci.host = host
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return invalidConn("the port is not a number between 1 and 65535")
		}
		ci.port = n
	}
	return nil
}

// parseQuery reads the query parameters. Names are case-insensitive and
// "_" may stand for "-" (ssl_mode = ssl-mode), as in MySQL option names.
func (ci *connInfo) parseQuery(query string) error {
	seen := map[string]bool{}
	for _, p := range strings.Split(query, "&") {
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return invalidConn(`a query parameter has no "="`)
		}
		key, err := decode(k)
		if err != nil {
			return invalidConn("bad percent-encoding in a query parameter name")
		}
		name := strings.ToLower(strings.ReplaceAll(key, "_", "-"))
		if name == "sslmode" {
			name = "ssl-mode"
		}
		switch name {
		case "ssl-mode", "ssl-ca", "ssl-cert", "ssl-key", "connect-timeout":
		default:
			return invalidConn(fmt.Sprintf("unknown query parameter %s (known: ssl-mode, ssl-ca, ssl-cert, ssl-key, connect-timeout)", quoteIfSafe(key)))
		}
		if seen[name] {
			return invalidConn(fmt.Sprintf("query parameter %s is given twice", name))
		}
		seen[name] = true
		val, err := decode(v)
		if err != nil {
			return invalidConn("bad percent-encoding in the " + name + " parameter")
		}
		if val == "" {
			return invalidConn("query parameter " + name + " is empty")
		}
		switch name {
		case "ssl-mode":
			mode, ok := parseSSLMode(val)
			if !ok {
				return invalidConn(fmt.Sprintf("ssl-mode %s is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY", quoteIfSafe(val)))
			}
			ci.tls.mode = mode
		case "ssl-ca":
			ci.tls.ca = val
		case "ssl-cert":
			ci.tls.cert = val
		case "ssl-key":
			ci.tls.key = val
		case "connect-timeout":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 3600 {
				return invalidConn("connect-timeout is not a number of seconds between 1 and 3600")
			}
			ci.connectTimeout = n
		}
	}
	return nil
}

// parseSSLMode accepts MySQL's --ssl-mode names in any case, with "-" or
// "_", and libpq's sslmode names (disable, prefer, require, verify-ca,
// verify-full) for people used to PostgreSQL URIs.
func parseSSLMode(s string) (string, bool) {
	switch strings.ToUpper(strings.ReplaceAll(s, "-", "_")) {
	case "DISABLED", "DISABLE":
		return sslDisabled, true
	case "PREFERRED", "PREFER":
		return sslPreferred, true
	case "REQUIRED", "REQUIRE":
		return sslRequired, true
	case "VERIFY_CA":
		return sslVerifyCA, true
	case "VERIFY_IDENTITY", "VERIFY_FULL":
		return sslVerifyIdentity, true
	}
	return "", false
}

func (ci *connInfo) addSecret(s string) {
	if s != "" {
		ci.secrets = append(ci.secrets, s)
	}
}

// decode undoes percent-encoding ("+" is not special).
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

// addr is host:port for logs and errors.
func (ci *connInfo) addr() string {
	if ci.socket {
		return "the container's Unix socket"
	}
	return net.JoinHostPort(ci.host, strconv.Itoa(ci.port))
}

// dbLabel names the database for logs.
func (ci *connInfo) dbLabel() string {
	if ci.database == "" {
		return "(all databases)"
	}
	return ci.database
}

// where names the target in errors: never a secret.
func (ci *connInfo) where() string {
	if ci.database == "" {
		return "all databases on " + ci.addr()
	}
	return fmt.Sprintf("database %q on %s", ci.database, ci.addr())
}

// optionFile renders the option file a tool of flavor f reads with
// --defaults-file: the connection's user, password, host, port and TLS
// settings. Values are double-quoted with the escapes the option-file
// parser undoes, so "#", quotes, backslashes and spaces survive.
func (ci *connInfo) optionFile(f flavor) string {
	var b strings.Builder
	b.WriteString("# Written by Label Backup for one run and removed after it.\n[client]\n")
	if ci.user != "" {
		writeOption(&b, "user", ci.user)
	}
	if ci.hasPassword {
		writeOption(&b, "password", ci.password)
	}
	writeOption(&b, "host", ci.host)
	fmt.Fprintf(&b, "port=%d\n", ci.port)
	// A URI names a network address: "localhost" must not mean the
	// default Unix socket.
	b.WriteString("protocol=TCP\n")
	if ci.tls.ca != "" {
		writeOption(&b, "ssl-ca", ci.tls.ca)
	}
	if ci.tls.cert != "" {
		writeOption(&b, "ssl-cert", ci.tls.cert)
	}
	if ci.tls.key != "" {
		writeOption(&b, "ssl-key", ci.tls.key)
	}
	// The mode comes after the files: with MariaDB tools ssl-ca and
	// friends imply --ssl, which DISABLED must override.
	for _, l := range tlsModeLines(f, ci.tls.mode) {
		b.WriteString(l + "\n")
	}
	// Options only the command-line client knows: mariadb-dump rejects
	// connect-timeout.
	fmt.Fprintf(&b, "[mysql]\nconnect-timeout=%d\n", ci.connectTimeout)
	if f == flavorMySQL {
		// MySQL's mysqldump 8 reads column statistics that MariaDB
		// servers lack; "loose-" keeps older mysqldumps from failing on
		// the unknown option.
		b.WriteString("[mysqldump]\nloose-column-statistics=0\n")
	}
	return b.String()
}

// tlsModeLines maps ssl-mode to option-file lines. MySQL's tools take
// ssl-mode as it is. MariaDB's tools have no ssl-mode: DISABLED is
// skip-ssl; PREFERRED and REQUIRED are ssl without certificate checks
// (MariaDB's tools then fall back to plain text when the server has no TLS,
// so REQUIRED is enforced by checking the session before the run); the
// VERIFY modes are ssl-verify-server-cert, which with MariaDB's tools also
// checks the host name: VERIFY_CA is as strict as VERIFY_IDENTITY.
func tlsModeLines(f flavor, mode string) []string {
	if mode == "" {
		return nil
	}
	if f == flavorMySQL {
		return []string{"ssl-mode=" + mode}
	}
	switch mode {
	case sslDisabled:
		return []string{"skip-ssl"}
	case sslPreferred, sslRequired:
		return []string{"ssl", "skip-ssl-verify-server-cert"}
	default:
		return []string{"ssl", "ssl-verify-server-cert"}
	}
}

// writeOption writes name="value" with the option-file escapes.
func writeOption(b *strings.Builder, name, value string) {
	b.WriteString(name)
	b.WriteString(`="`)
	for _, r := range value {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString("\"\n")
}

// runFiles is the private directory of one tool run: the option file, and
// the tool's HOME so that no ~/.my.cnf or ~/.mylogin.cnf of the agent's
// user is read.
type runFiles struct {
	dir          string
	defaultsFile string
}

// newRunFiles writes the option file for a tool of flavor f into a fresh
// private directory (0700; the file is 0600). cleanup removes it; it must
// always be called.
func (ci *connInfo) newRunFiles(f flavor) (rf *runFiles, cleanup func(), err error) {
	cleanup = func() {}
	dir, err := os.MkdirTemp("", "label-backup-mysql-")
	if err != nil {
		return nil, cleanup, fmt.Errorf("creating a private directory for the option file: %w", err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	file := filepath.Join(dir, "client.cnf")
	fh, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = fh.WriteString(ci.optionFile(f))
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		cleanup()
		return nil, func() {}, fmt.Errorf("writing the option file: %w", err)
	}
	return &runFiles{dir: dir, defaultsFile: file}, cleanup, nil
}

// env is the tools' extra environment: HOME in the private directory, and
// no login-path file (MySQL's tools read ~/.mylogin.cnf even with
// --defaults-file).
func (rf *runFiles) env() []string {
	return []string{"HOME=" + rf.dir, "MYSQL_TEST_LOGIN_FILE=" + filepath.Join(rf.dir, "no-login-path.cnf")}
}

// defaultsArg must be the tools' first argument.
func (rf *runFiles) defaultsArg() string { return "--defaults-file=" + rf.defaultsFile }

// checkQuery asks for the version and whether the session is encrypted.
const checkQuery = "SELECT VERSION(); SHOW SESSION STATUS LIKE 'Ssl_cipher'"

// checkArgs runs the connection check with the client. Naming the database
// makes the client select it, which fails for a missing database.
func checkArgs(defaultsArg, db string) []string {
	args := []string{defaultsArg, "--batch", "--skip-column-names"}
	if db != "" {
		args = append(args, "--database="+db)
	}
	return append(args, "--execute="+checkQuery)
}

// dumpArgs writes one database's tables, routines, triggers and events, or
// every database. A single database is dumped without --databases, so the
// dump has no CREATE DATABASE or USE and restores into whichever database
// the restore selects.
func dumpArgs(defaultsArg, db string) []string {
	args := []string{defaultsArg,
		"--single-transaction", "--routines", "--triggers", "--events", "--hex-blob",
		"--default-character-set=utf8mb4", "--max-allowed-packet=1G", "--no-tablespaces"}
	if db == "" {
		return append(args, "--all-databases", "--flush-privileges")
	}
	// "--" so that a database named like an option stays a name.
	return append(args, "--", db)
}

// restoreArgs loads SQL from stdin, stopping at the first error. MariaDB's
// client would copy a failing statement, rows of data and all, into its
// error message ("loose-": clients older than the option only warn).
func restoreArgs(defaultsArg, db string, f flavor) []string {
	args := []string{defaultsArg, "--batch", "--binary-mode",
		"--default-character-set=utf8mb4", "--max-allowed-packet=1G"}
	if f == flavorMariaDB {
		args = append(args, "--loose-skip-print-query-on-error")
	}
	if db != "" {
		args = append(args, "--database="+db)
	}
	return args
}
