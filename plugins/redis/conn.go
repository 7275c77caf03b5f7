package redis

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/labelbackup/label-backup/sdk"
)

// Connection-string query parameters (rediss:// only).
const (
	paramTLSCA          = "tls_ca"
	paramTLSCert        = "tls_cert"
	paramTLSKey         = "tls_key"
	paramTLSServerName  = "tls_server_name"
	paramInsecureVerify = "insecure_skip_verify"
)

var knownParams = []string{paramTLSCA, paramTLSCert, paramTLSKey, paramTLSServerName, paramInsecureVerify}

const defaultPort = 6379

// connInfo is a parsed redis:// or rediss:// URI. Only password is secret.
type connInfo struct {
	host string // host name or IP, without brackets
	port int
	user string // ACL user name; "" means none given
	// password is the decoded password; hasAuth says whether AUTH is sent
	// at all (a URI with no userinfo, or ":@", sends none).
	password string
	hasAuth  bool
	// db is the database index named by the path or by Target.Database;
	// dbGiven says whether one was named at all.
	db      int
	dbGiven bool

	tls           bool
	tlsCA         string
	tlsCert       string
	tlsKey        string
	tlsServerName string
	insecure      bool

	// secrets are scrubbed from every text that reaches an error or a log:
	// the decoded and the raw (encoded) password.
	secrets []string

	// inContainer: the connection is made from inside the database's
	// container (exec mode), so host is as seen from there.
	inContainer bool
	// derived, when set, tells where a connection derived from the
	// container (no backup.conn) came from.
	derived *derivation
}

// invalidConn reports a bad connection string. The reason never contains
// any part of the string: a password typed with an odd character ends up in
// odd places.
func invalidConn(reason string) error {
	return fmt.Errorf("redis: invalid connection string: %s: %w", reason, sdk.ErrInvalidArgument)
}

// parseConn parses
//
//	redis[s]://[[user]:password@]host[:port][/db][?param=value&...]
//
// dbOverride, when not empty, replaces the database index of the path.
//
// The userinfo ends at the last "@" before the query, so "@", "/" and ":"
// may appear unencoded in a password; "?" and "%" must be percent-encoded.
func parseConn(conn, dbOverride string) (*connInfo, error) {
	if strings.TrimSpace(conn) == "" {
		return nil, invalidConn("it is empty")
	}
	if strings.ContainsAny(conn, "\x00\r\n") {
		return nil, invalidConn("it contains a NUL byte or a line break")
	}
	ci := &connInfo{port: defaultPort}
	var rest string
	switch lower := strings.ToLower(conn); {
	case strings.HasPrefix(lower, "redis://"):
		rest = conn[len("redis://"):]
	case strings.HasPrefix(lower, "rediss://"):
		rest = conn[len("rediss://"):]
		ci.tls = true
	default:
		return nil, invalidConn("it must be a URI starting with redis:// or rediss://")
	}

	main, query, _ := strings.Cut(rest, "?")
	if at := strings.LastIndexByte(main, '@'); at >= 0 {
		userinfo := main[:at]
		main = main[at+1:]
		userRaw, pwRaw, hasColon := strings.Cut(userinfo, ":")
		if !hasColon {
			// "redis://word@host": some clients read word as a user name,
			// others as a password. Guessing wrong would log a password as
			// a user name, so insist on the colon.
			return nil, invalidConn(`the user info has no ":" (write redis://:PASSWORD@host for a password alone, redis://USER:PASSWORD@host for an ACL user)`)
		}
		ci.addSecret(pwRaw) // before decoding can fail
		pw, err := decode(pwRaw)
		if err != nil {
			return nil, invalidConn("bad percent-encoding in the password")
		}
		ci.addSecret(pw)
		user, err := decode(userRaw)
		if err != nil {
			return nil, invalidConn("bad percent-encoding in the user name")
		}
		if strings.ContainsAny(user, " \t") {
			return nil, invalidConn("the user name contains white space")
		}
		ci.user, ci.password = user, pw
		ci.hasAuth = user != "" || pw != ""
	}

	hostport, path, hasPath := strings.Cut(main, "/")
	if err := ci.parseHostPort(hostport); err != nil {
		return nil, err
	}
	if hasPath && path != "" {
		db, err := parseDB(path)
		if err != nil {
			return nil, invalidConn("the path must be a database index (/0, /1, ...)")
		}
		ci.db, ci.dbGiven = db, true
	}
	if dbOverride != "" {
		db, err := parseDB(dbOverride)
		if err != nil {
			return nil, fmt.Errorf("redis: invalid database %q: it must be a database index (0, 1, ...): %w", dbOverride, sdk.ErrInvalidArgument)
		}
		ci.db, ci.dbGiven = db, true
	}
	if err := ci.parseQuery(query); err != nil {
		return nil, err
	}
	return ci, nil
}

func (ci *connInfo) addSecret(s string) {
	if s != "" && !slices.Contains(ci.secrets, s) {
		ci.secrets = append(ci.secrets, s)
	}
}

func (ci *connInfo) parseHostPort(hp string) error {
	var host, port string
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return invalidConn(`an IPv6 host lacks its closing "]"`)
		}
		host = hp[1:end]
		if ip := net.ParseIP(host); ip == nil || !strings.Contains(host, ":") {
			return invalidConn("the bracketed host is not an IPv6 address")
		}
		switch after := hp[end+1:]; {
		case after == "":
		case strings.HasPrefix(after, ":"):
			port = after[1:]
			if port == "" {
				return invalidConn("the port is empty")
			}
		default:
			return invalidConn("unexpected text after an IPv6 host")
		}
	} else {
		var hasPort bool
		host, port, hasPort = strings.Cut(hp, ":")
		if hasPort && port == "" {
			return invalidConn("the port is empty")
		}
		if strings.Contains(port, ":") {
			return invalidConn("IPv6 hosts must be written in brackets")
		}
		h, err := decode(host)
		if err != nil {
			return invalidConn("bad percent-encoding in the host name")
		}
		host = h
		if strings.ContainsAny(host, " \t/@[]") {
			return invalidConn("the host name contains an invalid character")
		}
	}
	if host == "" {
		return invalidConn("it names no host")
	}
	ci.host = host
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' {
			return invalidConn("the port is not a number between 1 and 65535")
		}
		ci.port = n
	}
	return nil
}

func parseDB(s string) (int, error) {
	if s == "" || len(s) > 9 {
		return 0, fmt.Errorf("bad database index")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad database index")
		}
	}
	return strconv.Atoi(s)
}

func (ci *connInfo) parseQuery(query string) error {
	seen := map[string]bool{}
	for _, p := range strings.Split(query, "&") {
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		key, err := decode(k)
		if err != nil {
			return invalidConn("bad percent-encoding in a query parameter name")
		}
		if !slices.Contains(knownParams, key) {
			// The name, never its value: a misplaced password would be one.
			return invalidConn(fmt.Sprintf("unknown query parameter %q (known: %s)", clipName(key), strings.Join(knownParams, ", ")))
		}
		if !ok {
			return invalidConn(fmt.Sprintf(`query parameter %q has no "="`, key))
		}
		if seen[key] {
			return invalidConn(fmt.Sprintf("query parameter %q given twice", key))
		}
		seen[key] = true
		val, err := decode(v)
		if err != nil {
			return invalidConn(fmt.Sprintf("bad percent-encoding in query parameter %q", key))
		}
		if !ci.tls {
			return invalidConn(fmt.Sprintf("query parameter %q needs a rediss:// (TLS) URI", key))
		}
		switch key {
		case paramTLSCA:
			ci.tlsCA = val
		case paramTLSCert:
			ci.tlsCert = val
		case paramTLSKey:
			ci.tlsKey = val
		case paramTLSServerName:
			ci.tlsServerName = val
		case paramInsecureVerify:
			b, err := strconv.ParseBool(val)
			if err != nil {
				return invalidConn(fmt.Sprintf("query parameter %q is not a boolean", key))
			}
			ci.insecure = b
		}
	}
	if (ci.tlsCert == "") != (ci.tlsKey == "") {
		return invalidConn(fmt.Sprintf("%s and %s must be given together", paramTLSCert, paramTLSKey))
	}
	return nil
}

// clipName keeps an unknown parameter name short in error texts.
func clipName(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
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
	if strings.ContainsAny(out, "\x00\r\n") {
		return "", fmt.Errorf("encoded NUL byte or line break")
	}
	return out, nil
}

// addr is the dial address.
func (ci *connInfo) addr() string { return net.JoinHostPort(ci.host, strconv.Itoa(ci.port)) }

// where names the target in errors and logs: never a secret.
func (ci *connInfo) where() string {
	scheme := "redis"
	if ci.tls {
		scheme = "rediss"
	}
	w := scheme + "://" + ci.addr()
	if ci.inContainer {
		w += " (inside the container)"
	}
	return w
}

// tlsConfig builds the TLS settings of a rediss:// URI, reading the files
// it names.
func (ci *connInfo) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         ci.host,
		InsecureSkipVerify: ci.insecure, // only when insecure_skip_verify=true
	}
	if ci.tlsServerName != "" {
		cfg.ServerName = ci.tlsServerName
	}
	if ci.tlsCA != "" {
		pem, err := os.ReadFile(ci.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("redis: reading %s: %w: %w", paramTLSCA, err, sdk.ErrInvalidArgument)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis: %s %q holds no PEM certificate: %w", paramTLSCA, ci.tlsCA, sdk.ErrInvalidArgument)
		}
		cfg.RootCAs = pool
	}
	if ci.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(ci.tlsCert, ci.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("redis: loading %s/%s: %w: %w", paramTLSCert, paramTLSKey, err, sdk.ErrInvalidArgument)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
