package mongodb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/labelbackup/label-backup/sdk"
)

const (
	schemeStandard = "mongodb://"
	schemeSRV      = "mongodb+srv://"

	// defaultSelectionTimeout bounds server selection (and so a dump or a
	// check of an unreachable server) unless the URI sets
	// serverSelectionTimeoutMS.
	defaultSelectionTimeout = 10 * time.Second
	// defaultConnectTimeout bounds one TCP/TLS connect unless the URI sets
	// connectTimeoutMS.
	defaultConnectTimeout = 10 * time.Second
	// appName identifies the agent in server logs unless the URI sets one.
	appName = "label-backup"
)

// connInfo is a parsed connection: the driver's options (built from the
// whole URI, so every option applies: authSource, tls, replicaSet,
// readPreference, ...), what may be shown (hosts, database) and what may
// never be (the secrets, scrubbed from every error).
type connInfo struct {
	opts *options.ClientOptions
	// database is the one database to work on: Target.Database, else the
	// URI's path. "" means every database.
	database string
	// uriDatabase is the database named by the URI's path, if any.
	uriDatabase string
	hosts       []string
	secrets     []string
	// hint is added to authentication errors: why a derived connection
	// has no credentials.
	hint string
}

// invalidConn reports a bad connection string without quoting any of it.
func invalidConn(reason string) error {
	return fmt.Errorf("mongodb: invalid connection string: %s: %w", reason, sdk.ErrInvalidArgument)
}

// parseConn parses a mongodb:// or mongodb+srv:// URI. dbOverride, when
// set, selects the database instead of the URI's path. The path keeps its
// other meaning: it stays the authentication database when the URI has no
// authSource, so overriding the database never changes how we log in.
func parseConn(conn, dbOverride string) (*connInfo, error) {
	if strings.TrimSpace(conn) == "" {
		return nil, invalidConn("it is empty")
	}
	ci := &connInfo{}
	ci.collectSecrets(conn)
	lower := strings.ToLower(conn)
	var rest string
	switch {
	case strings.HasPrefix(lower, schemeStandard):
		rest = conn[len(schemeStandard):]
	case strings.HasPrefix(lower, schemeSRV):
		rest = conn[len(schemeSRV):]
	default:
		return nil, invalidConn("it must be a URI starting with mongodb:// or mongodb+srv://")
	}
	if dbOverride != "" {
		if err := checkDatabaseName(dbOverride); err != nil {
			return nil, err
		}
	}
	opts := options.Client().ApplyURI(conn)
	if err := opts.Validate(); err != nil {
		kind := sdk.ErrInvalidArgument
		if strings.HasPrefix(lower, schemeSRV) && strings.Contains(err.Error(), "lookup ") {
			kind = sdk.ErrUnavailable // the SRV or TXT DNS lookup failed
		}
		return nil, fmt.Errorf("mongodb: invalid connection string: %s: %w", ci.scrub(err.Error()), kind)
	}
	// The driver has checked the URI, so the path is the text between the
	// first "/" after the authority and the "?".
	if slash := strings.IndexByte(rest, '/'); slash >= 0 {
		path, _, _ := strings.Cut(rest[slash+1:], "?")
		db, err := url.PathUnescape(path)
		if err != nil {
			return nil, invalidConn("bad percent-encoding in the database name")
		}
		if db != "" {
			if err := checkDatabaseName(db); err != nil {
				return nil, err
			}
		}
		ci.uriDatabase = db
	}
	ci.database = ci.uriDatabase
	if dbOverride != "" {
		ci.database = dbOverride
	}
	if opts.ServerSelectionTimeout == nil {
		opts.SetServerSelectionTimeout(defaultSelectionTimeout)
	}
	if opts.ConnectTimeout == nil {
		opts.SetConnectTimeout(defaultConnectTimeout)
	}
	if opts.AppName == nil {
		opts.SetAppName(appName)
	}
	ci.opts = opts
	ci.hosts = append([]string(nil), opts.Hosts...)
	return ci, nil
}

// checkDatabaseName applies MongoDB's rules for database names.
func checkDatabaseName(db string) error {
	if len(db) > 63 {
		return fmt.Errorf("mongodb: database name %q is longer than 63 bytes: %w", db[:20]+"...", sdk.ErrInvalidArgument)
	}
	if i := strings.IndexAny(db, "/\\. \"$*<>:|?\x00"); i >= 0 {
		return fmt.Errorf("mongodb: database name %q contains %q, which MongoDB does not allow: %w", db, db[i:i+1], sdk.ErrInvalidArgument)
	}
	return nil
}

// collectSecrets remembers every form in which the connection string's
// secrets could show up in an error: the password (raw, decoded, quoted)
// and secret-looking query options. It works on the raw text, so it also
// covers strings the driver rejects.
func (ci *connInfo) collectSecrets(conn string) {
	rest := conn
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	// The userinfo ends at the last "@" of the authority; a password with
	// an unescaped "/" or "?" would move that, so try both readings.
	authority := rest
	if i := strings.IndexAny(authority, "/?"); i >= 0 {
		authority = authority[:i]
	}
	for _, s := range []string{authority, rest} {
		if at := strings.LastIndexByte(s, '@'); at >= 0 {
			if _, pw, ok := strings.Cut(s[:at], ":"); ok {
				ci.addSecret(pw)
			}
		}
	}
	if _, query, ok := strings.Cut(rest, "?"); ok {
		for _, kv := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
			k, v, _ := strings.Cut(kv, "=")
			lk := strings.ToLower(k)
			if strings.Contains(lk, "password") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") {
				ci.addSecret(v)
			}
			if lk == "authmechanismproperties" {
				// NAME:value pairs, e.g. AWS_SESSION_TOKEN:...
				ci.addSecret(v)
				for _, pair := range strings.Split(v, ",") {
					if _, pv, ok := strings.Cut(pair, ":"); ok {
						ci.addSecret(pv)
					}
				}
			}
		}
	}
}

func (ci *connInfo) addSecret(s string) {
	if s == "" {
		return
	}
	forms := []string{s}
	if d, err := url.QueryUnescape(s); err == nil {
		forms = append(forms, d)
	}
	if d, err := url.PathUnescape(s); err == nil {
		forms = append(forms, d)
	}
	for _, f := range forms {
		if f == "" {
			continue
		}
		ci.secrets = append(ci.secrets, f)
		// As %q and JSON-ish error texts would show it.
		for _, q := range []string{strconv.Quote(f), strconv.QuoteToASCII(f)} {
			if q = q[1 : len(q)-1]; q != f {
				ci.secrets = append(ci.secrets, q)
			}
		}
	}
	// Longest first, so no secret is left half-replaced by a shorter one.
	sort.Slice(ci.secrets, func(i, j int) bool { return len(ci.secrets[i]) > len(ci.secrets[j]) })
}

// scrub removes every secret from a message.
func (ci *connInfo) scrub(msg string) string {
	for _, s := range ci.secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return msg
}

// hostList is the hosts, for logs and errors.
func (ci *connInfo) hostList() string {
	if len(ci.hosts) == 0 {
		return "(no host)"
	}
	return strings.Join(ci.hosts, ",")
}

// where names the target in errors and logs: never a secret.
func (ci *connInfo) where() string {
	if ci.database == "" {
		return "all databases on " + ci.hostList()
	}
	return fmt.Sprintf("database %q on %s", ci.database, ci.hostList())
}

// connect makes a client. The driver connects lazily: the first operation
// dials, authenticates and reports failures.
func (ci *connInfo) connect() (*mongo.Client, error) {
	client, err := mongo.Connect(ci.opts)
	if err != nil {
		return nil, fmt.Errorf("mongodb: creating a client for %s: %s: %w", ci.where(), ci.scrub(err.Error()), sdk.ErrInvalidArgument)
	}
	return client, nil
}

// disconnect closes a client without waiting on a cancelled context.
func disconnect(ctx context.Context, client *mongo.Client) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = client.Disconnect(ctx)
}

// fail turns a driver error into the plugin's error: classified (an SDK
// sentinel, or the context's error once ctx is done) and scrubbed of
// every secret. The driver's error chain is not kept: its types could
// carry the connection string.
func (ci *connInfo) fail(ctx context.Context, doing string, err error) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf("mongodb: %s: %s: %s", ci.where(), doing, ci.scrub(err.Error()))
	kind := classify(ctx, err)
	if ci.hint != "" && (errors.Is(kind, sdk.ErrUnauthenticated) || errors.Is(kind, sdk.ErrPermission)) {
		msg += "; " + ci.hint
	}
	if kind != nil {
		return &classifiedError{msg: msg, kind: kind}
	}
	return errors.New(msg)
}

// classifiedError is a scrubbed driver error that wraps a sentinel.
type classifiedError struct {
	msg  string
	kind error
}

func (e *classifiedError) Error() string {
	if strings.Contains(e.msg, e.kind.Error()) {
		return e.msg
	}
	return e.msg + " (" + e.kind.Error() + ")"
}

func (e *classifiedError) Unwrap() error { return e.kind }
