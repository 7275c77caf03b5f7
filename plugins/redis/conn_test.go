package redis

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

func TestParseConn(t *testing.T) {
	tests := []struct {
		name     string
		conn     string
		db       string // Target.Database
		want     connInfo
		wantAddr string
	}{
		{
			name: "password only",
			conn: "redis://:s3cretPW@cache:6380",
			want: connInfo{host: "cache", port: 6380, password: "s3cretPW", hasAuth: true}, wantAddr: "cache:6380",
		},
		{
			name: "password only, no port",
			conn: "redis://:s3cretPW@cache",
			want: connInfo{host: "cache", port: 6379, password: "s3cretPW", hasAuth: true}, wantAddr: "cache:6379",
		},
		{
			name: "ACL user and database",
			conn: "redis://backup:s3cretPW@10.0.0.5:6379/2",
			want: connInfo{host: "10.0.0.5", port: 6379, user: "backup", password: "s3cretPW", hasAuth: true, db: 2, dbGiven: true},
		},
		{
			name: "no credentials",
			conn: "redis://localhost",
			want: connInfo{host: "localhost", port: 6379},
		},
		{
			name: "empty userinfo sends no AUTH",
			conn: "redis://:@localhost/",
			want: connInfo{host: "localhost", port: 6379},
		},
		{
			name: "ACL user with empty password (nopass user)",
			conn: "redis://reader:@localhost",
			want: connInfo{host: "localhost", port: 6379, user: "reader", hasAuth: true},
		},
		{
			name: "scheme is case-insensitive",
			conn: "REDIS://:s3cretPW@cache",
			want: connInfo{host: "cache", port: 6379, password: "s3cretPW", hasAuth: true},
		},
		{
			name: "unencoded @ / : in the password",
			conn: "redis://u:p@ss/w:rd@cache:7000/3",
			want: connInfo{host: "cache", port: 7000, user: "u", password: "p@ss/w:rd", hasAuth: true, db: 3, dbGiven: true},
		},
		{
			name: "percent-encoded password and user",
			conn: "redis://us%40er:p%3Fss%25w%2B@cache",
			want: connInfo{host: "cache", port: 6379, user: "us@er", password: "p?ss%w+", hasAuth: true},
		},
		{
			name: "IPv6",
			conn: "redis://:pw@[::1]:6390/0",
			want: connInfo{host: "::1", port: 6390, password: "pw", hasAuth: true, dbGiven: true}, wantAddr: "[::1]:6390",
		},
		{
			name: "IPv6 without port",
			conn: "redis://[fd00::5]",
			want: connInfo{host: "fd00::5", port: 6379}, wantAddr: "[fd00::5]:6379",
		},
		{
			name: "database override",
			conn: "redis://:pw@cache/1",
			db:   "4",
			want: connInfo{host: "cache", port: 6379, password: "pw", hasAuth: true, db: 4, dbGiven: true},
		},
		{
			name: "rediss with TLS options",
			conn: "rediss://default:pw@cache.example:6380/0?tls_ca=/certs/ca%20bundle.pem&tls_cert=/c/cl.crt&tls_key=/c/cl.key&tls_server_name=redis.internal&insecure_skip_verify=false",
			want: connInfo{host: "cache.example", port: 6380, user: "default", password: "pw", hasAuth: true, dbGiven: true,
				tls: true, tlsCA: "/certs/ca bundle.pem", tlsCert: "/c/cl.crt", tlsKey: "/c/cl.key", tlsServerName: "redis.internal"},
		},
		{
			name: "rediss insecure",
			conn: "rediss://cache?insecure_skip_verify=true&",
			want: connInfo{host: "cache", port: 6379, tls: true, insecure: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ci, err := parseConn(tc.conn, tc.db)
			if err != nil {
				t.Fatalf("parseConn: %v", err)
			}
			got := *ci
			got.secrets = nil
			if !equalConn(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if tc.wantAddr != "" && ci.addr() != tc.wantAddr {
				t.Errorf("addr %q, want %q", ci.addr(), tc.wantAddr)
			}
			if tc.want.password != "" && !slices.Contains(ci.secrets, tc.want.password) {
				t.Errorf("password not among the secrets %q", ci.secrets)
			}
			if strings.Contains(ci.where(), tc.want.password+"@") || (tc.want.password != "" && strings.Contains(ci.where(), tc.want.password)) {
				t.Errorf("where() %q shows the password", ci.where())
			}
		})
	}
}

func equalConn(a, b connInfo) bool {
	a.secrets, b.secrets = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestParseConnErrors(t *testing.T) {
	const pw = "Sup3r-Secr3t"
	tests := []struct {
		name     string
		conn     string
		db       string
		wantText string
	}{
		{"empty", "", "", "empty"},
		{"wrong scheme", "http://:" + pw + "@cache", "", "redis://"},
		{"postgres URI", "postgresql://u:" + pw + "@db/x", "", "redis://"},
		{"bare host", "cache:6379", "", "redis://"},
		{"user info without colon", "redis://" + pw + "@cache", "", `has no ":"`},
		{"no host", "redis://:" + pw + "@", "", "no host"},
		{"no host, port only", "redis://:" + pw + "@:6379", "", "no host"},
		{"port not a number", "redis://:" + pw + "@cache:63a9", "", "port"},
		{"port zero", "redis://:" + pw + "@cache:0", "", "port"},
		{"port too big", "redis://:" + pw + "@cache:70000", "", "port"},
		{"empty port", "redis://:" + pw + "@cache:", "", "port is empty"},
		{"unbracketed IPv6", "redis://:" + pw + "@::1:6379", "", "brackets"},
		{"unclosed IPv6", "redis://:" + pw + "@[::1:6379", "", "closing"},
		{"bracketed non-IPv6", "redis://:" + pw + "@[cache]:6379", "", "IPv6"},
		{"db not a number", "redis://:" + pw + "@cache/zero", "", "database index"},
		{"db negative", "redis://:" + pw + "@cache/-1", "", "database index"},
		{"db with more path", "redis://:" + pw + "@cache/1/2", "", "database index"},
		{"database override not a number", "redis://:" + pw + "@cache", "app", "database index"},
		{"unknown query parameter", "redis://:" + pw + "@cache?timeout=5", "", `unknown query parameter "timeout"`},
		{"password as query parameter", "redis://cache?password=" + pw, "", `unknown query parameter "password"`},
		{"TLS option on redis://", "redis://:" + pw + "@cache?tls_ca=/ca.pem", "", "rediss://"},
		{"parameter without value", "rediss://:" + pw + "@cache?insecure_skip_verify", "", `has no "="`},
		{"bad boolean", "rediss://:" + pw + "@cache?insecure_skip_verify=maybe", "", "boolean"},
		{"parameter twice", "rediss://:" + pw + "@cache?tls_ca=/a&tls_ca=/b", "", "twice"},
		{"cert without key", "rediss://:" + pw + "@cache?tls_cert=/c.pem", "", "together"},
		{"bad encoding in the password", "redis://:" + pw + "%zz@cache", "", "percent-encoding in the password"},
		{"encoded NUL in the password", "redis://:" + pw + "%00@cache", "", "percent-encoding in the password"},
		{"raw line break", "redis://:" + pw + "\r\n@cache", "", "line break"},
		{"space in host", "redis://:" + pw + "@ca che", "", "invalid character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ci, err := parseConn(tc.conn, tc.db)
			if err == nil {
				t.Fatalf("parseConn succeeded: %+v", ci)
			}
			if !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("error %v does not wrap ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not mention %q", err, tc.wantText)
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "Secr3t") {
				t.Errorf("error text contains the password: %q", err)
			}
		})
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, query string }{
		{"missing CA file", "tls_ca=" + filepath.Join(dir, "nope.pem")},
		{"CA file without PEM", "tls_ca=" + bad},
		{"bad key pair", "tls_cert=" + bad + "&tls_key=" + bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci, err := parseConn("rediss://:pw@cache?"+tc.query, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ci.tlsConfig(); !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("tlsConfig: %v, want ErrInvalidArgument", err)
			}
		})
	}
	ci, err := parseConn("rediss://:pw@10.1.2.3?tls_server_name=redis.internal&insecure_skip_verify=1", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ci.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "redis.internal" || !cfg.InsecureSkipVerify || cfg.MinVersion == 0 {
		t.Errorf("tls config %+v", cfg)
	}
}
