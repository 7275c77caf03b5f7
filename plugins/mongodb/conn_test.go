package mongodb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/labelbackup/label-backup/sdk"
)

func TestParseConn(t *testing.T) {
	tests := []struct {
		name, conn, override string
		wantDB, wantAuth     string
		wantHosts            string
		wantTimeout          time.Duration
	}{
		{name: "all databases", conn: "mongodb://u:p@db:27017/?authSource=admin", wantAuth: "admin", wantHosts: "db:27017", wantTimeout: defaultSelectionTimeout},
		{name: "no slash", conn: "mongodb://db", wantHosts: "db", wantTimeout: defaultSelectionTimeout},
		{name: "path selects", conn: "mongodb://u:p@db/app?authSource=admin", wantDB: "app", wantAuth: "admin", wantHosts: "db", wantTimeout: defaultSelectionTimeout},
		// The override selects the database; the path stays the
		// authentication database, as the driver reads it.
		{name: "override keeps auth db", conn: "mongodb://u:p@db/app", override: "other", wantDB: "other", wantAuth: "app", wantHosts: "db", wantTimeout: defaultSelectionTimeout},
		{name: "encoded path", conn: "mongodb://db/my%2Dapp", wantDB: "my-app", wantHosts: "db", wantTimeout: defaultSelectionTimeout},
		{name: "replica set, timeout from URI", conn: "mongodb://u:p@a:1,b:2/app?replicaSet=rs0&serverSelectionTimeoutMS=1500", wantDB: "app", wantAuth: "app", wantHosts: "a:1,b:2", wantTimeout: 1500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ci, err := parseConn(tc.conn, tc.override)
			if err != nil {
				t.Fatal(err)
			}
			if ci.database != tc.wantDB || ci.hostList() != tc.wantHosts {
				t.Errorf("database %q hosts %q", ci.database, ci.hostList())
			}
			auth := ""
			if ci.opts.Auth != nil {
				auth = ci.opts.Auth.AuthSource
			}
			if auth != tc.wantAuth {
				t.Errorf("auth source %q, want %q", auth, tc.wantAuth)
			}
			if *ci.opts.ServerSelectionTimeout != tc.wantTimeout {
				t.Errorf("server selection timeout %v", *ci.opts.ServerSelectionTimeout)
			}
			if *ci.opts.AppName != appName {
				t.Errorf("app name %q", *ci.opts.AppName)
			}
		})
	}
}

func TestParseConnErrorsHideSecrets(t *testing.T) {
	const pw = "S3cr3t-Pa55"
	tests := []struct{ name, conn, override string }{
		{"empty", "  ", ""},
		{"wrong scheme", "postgresql://u:" + pw + "@db/x", ""},
		{"bad port", "mongodb://u:" + pw + "@db:notaport/x", ""},
		{"unescaped @ in password", "mongodb://u:" + pw + "@x@db/x", ""},
		{"unescaped / in password", "mongodb://u:" + pw + "/z@db/x", ""},
		{"unknown option value", "mongodb://u:" + pw + "@db/x?tls=maybe", ""},
		{"bad database in path", "mongodb://u:" + pw + "@db/a.b", ""},
		{"bad database override", "mongodb://u:" + pw + "@db/", "a b"},
		{"srv with two hosts", "mongodb+srv://u:" + pw + "@a.example,b.example/", ""},
		{"secret option", "mongodb://u@db/?tlsCertificateKeyFilePassword=" + pw + "&tls=maybe", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConn(tc.conn, tc.override)
			if !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), tc.conn) {
				t.Errorf("error shows the secret: %v", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestScrub(t *testing.T) {
	ci := &connInfo{}
	ci.collectSecrets("mongodb://user:p%40ss%22w%C3%B6rd@db1,db2/app?authMechanismProperties=AWS_SESSION_TOKEN:tok3n&tlsCertificateKeyFilePassword=kfp4ss")
	msg := `auth failed for "p@ss\"wörd" (raw p%40ss%22w%C3%B6rd), quoted "p@ss\"w\u00f6rd", token tok3n, key kfp4ss; user and hosts db1,db2 stay`
	got := ci.scrub(msg)
	for _, s := range []string{"p@ss", "p%40ss", "tok3n", "kfp4ss"} {
		if strings.Contains(got, s) {
			t.Errorf("scrubbed message still has %q: %s", s, got)
		}
	}
	if !strings.Contains(got, "user and hosts db1,db2 stay") {
		t.Errorf("scrub removed too much: %s", got)
	}
}

func TestClassify(t *testing.T) {
	bg := context.Background()
	cancelled, cancel := context.WithCancel(bg)
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want error
	}{
		{"authentication failed", bg, mongo.CommandError{Code: 18, Message: "Authentication failed."}, sdk.ErrUnauthenticated},
		{"not logged in", bg, mongo.CommandError{Code: 13, Message: "Command listDatabases requires authentication"}, sdk.ErrUnauthenticated},
		{"no privilege", bg, mongo.CommandError{Code: 13, Message: "not authorized on admin to execute command { listDatabases: 1 }"}, sdk.ErrPermission},
		{"namespace not found", bg, mongo.CommandError{Code: 26, Message: "ns not found"}, sdk.ErrNotFound},
		{"primary stepped down", bg, mongo.CommandError{Code: 189}, sdk.ErrUnavailable},
		{"other server error", bg, mongo.CommandError{Code: 2, Message: "BadValue"}, nil},
		{"server selection", bg, topology.ServerSelectionError{Wrapped: context.DeadlineExceeded}, sdk.ErrUnavailable},
		{"connection", bg, topology.ConnectionError{Wrapped: errors.New("connection refused")}, sdk.ErrUnavailable},
		{"our own timeout", bg, fmt.Errorf("ping: %w", context.DeadlineExceeded), sdk.ErrUnavailable},
		{"caller cancelled", cancelled, topology.ServerSelectionError{Wrapped: context.Canceled}, context.Canceled},
		{"plain", bg, errors.New("something"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.ctx, tc.err); got != tc.want {
				t.Errorf("classify = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFailScrubsAndClassifies(t *testing.T) {
	ci, err := parseConn("mongodb://root:Hunter2-Secret@db:27017/app", "")
	if err != nil {
		t.Fatal(err)
	}
	err = ci.fail(context.Background(), "connecting", mongo.CommandError{Code: 18, Message: "bad password Hunter2-Secret"})
	if !errors.Is(err, sdk.ErrUnauthenticated) || strings.Contains(err.Error(), "Hunter2-Secret") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), `database "app" on db:27017`) {
		t.Errorf("err = %v, want the target named", err)
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		t.Error("the driver's error (which may carry the URI) must not be kept in the chain")
	}
	if err := ci.fail(context.Background(), "x", errors.New("plain")); errors.Is(err, sdk.ErrUnavailable) || err.Error() != `mongodb: database "app" on db:27017: x: plain` {
		t.Errorf("err = %v", err)
	}
}

func TestBoolOption(t *testing.T) {
	for v, want := range map[string]bool{"": false, "true": true, "1": true, "FALSE": false} {
		got, err := boolOption(map[string]string{"k": v}, "k")
		if err != nil || got != want {
			t.Errorf("%q: %v, %v", v, got, err)
		}
	}
	if _, err := boolOption(map[string]string{"k": "yes please"}, "k"); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("err = %v", err)
	}
	if got, err := boolOption(nil, "k"); got || err != nil {
		t.Errorf("nil map: %v, %v", got, err)
	}
}
