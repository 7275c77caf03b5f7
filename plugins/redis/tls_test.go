package redis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/redis/internal/redistest"
	"github.com/labelbackup/label-backup/sdk"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and
// "redis.test", a client certificate, and an unrelated CA, as PEM files.
type testPKI struct {
	dir                                string
	ca, otherCA, serverCert, serverKey string
	clientCert, clientKey              string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	caKey, caCert, caPath := p.makeCA(t, "lbtest CA", "ca.pem")
	_, _, p.otherCA = p.makeCA(t, "other CA", "other-ca.pem")
	p.ca = caPath
	p.serverCert, p.serverKey = p.makeLeaf(t, caKey, caCert, "server", &x509.Certificate{
		DNSNames: []string{"redis.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	p.clientCert, p.clientKey = p.makeLeaf(t, caKey, caCert, "client", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return p
}

var serial int64

func (p *testPKI) makeCA(t *testing.T, name, file string) (*ecdsa.PrivateKey, *x509.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(p.dir, file)
	writePEM(t, path, "CERTIFICATE", der)
	return key, cert, path
}

func (p *testPKI) makeLeaf(t *testing.T, caKey *ecdsa.PrivateKey, ca *x509.Certificate, name string, tmpl *x509.Certificate) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.Subject = pkix.Name{CommonName: name}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "PRIVATE KEY", keyDER)
	return certPath, keyPath
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLS validates and dumps over rediss:// against a server that
// requires client certificates, and checks that verification failures are
// failures.
func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	pw := redistest.RandomPassword("tls-pw/")
	srv := redistest.New(t, redistest.Options{Password: pw, TLS: &redistest.TLSOptions{
		CertFile: pki.serverCert, KeyFile: pki.serverKey, CAFile: pki.ca, AuthClients: true,
	}})
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustDo(t, c, "CONFIG", "SET", "repl-diskless-sync-delay", "0")
	mustDo(t, c, "SET", "over", "tls")

	client := "&tls_cert=" + escape(pki.clientCert) + "&tls_key=" + escape(pki.clientKey)
	base := "rediss://:" + escape(pw) + "@"
	tests := []struct {
		name     string
		conn     string
		wantErr  bool
		wantText string
	}{
		{name: "verified by tls_ca", conn: base + srv.TLSAddr() + "?tls_ca=" + escape(pki.ca) + client},
		{name: "server name given for an address", conn: base + srv.TLSAddr() + "?tls_ca=" + escape(pki.ca) + "&tls_server_name=redis.test" + client},
		{name: "verification off", conn: base + srv.TLSAddr() + "?insecure_skip_verify=true" + client},
		{name: "unknown CA", conn: base + srv.TLSAddr() + "?tls_ca=" + escape(pki.otherCA) + client, wantErr: true, wantText: "certificate"},
		{name: "system roots only", conn: base + srv.TLSAddr() + "?tls_server_name=redis.test" + client, wantErr: true, wantText: "certificate"},
		{name: "wrong server name", conn: base + srv.TLSAddr() + "?tls_ca=" + escape(pki.ca) + "&tls_server_name=other.test" + client, wantErr: true, wantText: "other.test"},
		{name: "no client certificate", conn: base + srv.TLSAddr() + "?tls_ca=" + escape(pki.ca), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := New().Validate(ctx, sdk.Target{Connection: tc.conn})
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				var out strings.Builder
				res, err := New().Dump(ctx, sdk.Target{Connection: tc.conn}, &out)
				if err != nil {
					t.Fatalf("Dump: %v", err)
				}
				if res.Bytes != int64(out.Len()) || !strings.HasPrefix(out.String(), "REDIS") || !strings.Contains(out.String(), "over") {
					t.Errorf("dump of %d bytes: %+v", out.Len(), res)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			if errors.Is(err, sdk.ErrUnavailable) && tc.wantText != "" {
				t.Errorf("a verification failure is not transient: %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not mention %q", err, tc.wantText)
			}
			assertNoSecret(t, err.Error(), pw)
			t.Logf("error: %v", err)
			if _, err := New().Dump(ctx, sdk.Target{Connection: tc.conn}, io.Discard); err == nil {
				t.Error("Dump succeeded")
			}
		})
	}
}
