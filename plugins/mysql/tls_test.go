package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/mysql/internal/mytest"
	"github.com/labelbackup/label-backup/sdk"
)

// TestTLS runs against a server with TLS (certificate for 127.0.0.1 signed
// by a test CA) and checks that every ssl-mode reaches the connection
// check, the dump and the restore alike.
func TestTLS(t *testing.T) {
	s := mytest.New(t, mytest.Options{TLS: true})
	p := newPlugin(t, s)
	if err := s.CreateDB("tlsdb"); err != nil {
		t.Fatal(err)
	}
	mustSQL(t, s, "tlsdb", "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t VALUES (1, 'über TLS 🔒');")
	// A user that may only log in over TLS: a mode that turns TLS off
	// must fail its login.
	const tlsOnlyPW = "TlsOnly-Passw0rd"
	mustSQL(t, s, "", fmt.Sprintf("CREATE USER 'tlsonly'@'127.0.0.1' IDENTIFIED BY '%s' REQUIRE SSL; GRANT ALL ON *.* TO 'tlsonly'@'127.0.0.1';", tlsOnlyPW))
	ca := "ssl-ca=" + url.QueryEscape(s.TLS.CA)
	otherCA := "ssl-ca=" + url.QueryEscape(s.TLS.OtherCA)
	viaLocalhost := func(uri string) string {
		return strings.Replace(uri, "@127.0.0.1:", "@localhost:", 1)
	}
	tests := []struct {
		name     string
		conn     string
		wantErr  error // nil: success; errAny: any error
		wantText string
	}{
		{name: "REQUIRED", conn: s.URI("tlsdb", "ssl-mode=REQUIRED")},
		{name: "PREFERRED", conn: s.URI("tlsdb", "ssl-mode=PREFERRED")},
		{name: "VERIFY_CA with the CA", conn: s.URI("tlsdb", "ssl-mode=VERIFY_CA", ca)},
		{name: "VERIFY_IDENTITY with the CA", conn: s.URI("tlsdb", "sslmode=verify_identity", ca)},
		{name: "VERIFY_IDENTITY with another CA", conn: s.URI("tlsdb", "ssl-mode=VERIFY_IDENTITY", otherCA), wantErr: errAny, wantText: "certificate"},
		{name: "VERIFY_IDENTITY without a CA", conn: s.URI("tlsdb", "ssl-mode=VERIFY_IDENTITY"), wantErr: errAny, wantText: "certificate"},
		{name: "VERIFY_IDENTITY, wrong host name", conn: viaLocalhost(s.URI("tlsdb", "ssl-mode=VERIFY_IDENTITY", ca)), wantErr: errAny, wantText: "TLS/SSL error"},
		// MariaDB's tools check the host name whenever they verify.
		{name: "VERIFY_CA, wrong host name", conn: viaLocalhost(s.URI("tlsdb", "ssl-mode=VERIFY_CA", ca)), wantErr: errAny, wantText: "TLS/SSL error"},
		{name: "TLS-only user, PREFERRED", conn: s.URIFor("tlsonly", tlsOnlyPW, "tlsdb", "ssl-mode=PREFERRED")},
		{name: "TLS-only user, VERIFY_IDENTITY", conn: s.URIFor("tlsonly", tlsOnlyPW, "tlsdb", "ssl-mode=VERIFY_IDENTITY", ca)},
		{name: "TLS-only user, DISABLED", conn: s.URIFor("tlsonly", tlsOnlyPW, "tlsdb", "ssl-mode=DISABLED"),
			wantErr: sdk.ErrUnauthenticated, wantText: "Access denied for user 'tlsonly'"},
		{name: "TLS-only user, DISABLED wins over ssl-ca", conn: s.URIFor("tlsonly", tlsOnlyPW, "tlsdb", ca, "ssl-mode=DISABLED"),
			wantErr: sdk.ErrUnauthenticated, wantText: "Access denied for user 'tlsonly'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			target := sdk.Target{Connection: tc.conn}
			_, verr := p.Validate(ctx, target)
			var dump bytes.Buffer
			_, derr := p.Dump(ctx, target, &dump)
			for op, err := range map[string]error{"Validate": verr, "Dump": derr} {
				if tc.wantErr == nil {
					if err != nil {
						t.Errorf("%s: %v", op, err)
					}
					continue
				}
				if err == nil {
					t.Errorf("%s succeeded, want an error", op)
					continue
				}
				if tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
					t.Errorf("%s: error %q does not wrap %v", op, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("%s: error %q lacks %q", op, err, tc.wantText)
				}
				assertNoSecret(t, err.Error(), append(secretsOf(s), tlsOnlyPW)...)
				t.Logf("%s: %v", op, err)
			}
			if tc.wantErr != nil {
				return
			}
			if !strings.Contains(dump.String(), "über TLS 🔒") {
				t.Errorf("dump lacks the row")
			}
			// The restore takes the same settings.
			dst := "tls_dst_" + strconv.Itoa(int(time.Now().UnixNano()%1e9))
			if err := s.CreateDB(dst); err != nil {
				t.Fatal(err)
			}
			rt := target
			rt.Database = dst
			if _, err := p.Restore(ctx, rt, Format, bytes.NewReader(dump.Bytes())); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if got := mustSQL(t, s, dst, "SELECT v FROM t"); got != "über TLS 🔒" {
				t.Errorf("restored %q", got)
			}
		})
	}
	// The sessions really were encrypted.
	if out := mustSQL(t, s, "", "SHOW GLOBAL STATUS LIKE 'Ssl_accepts'"); strings.HasSuffix(out, "\t0") {
		t.Errorf("the server accepted no TLS connection: %q", out)
	}
}
