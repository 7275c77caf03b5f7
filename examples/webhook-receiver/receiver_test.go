package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const secret = "your-super-secret-webhook-key"

// successBody is the README's success payload example.
const successBody = `{
  "container_id": "dbe737c824731c8f8c34e356d38a183502024c136a180618cf34ae08783ef649",
  "container_name": "myapp_postgres",
  "database_type": "postgres",
  "database_name": "myapp",
  "destination_url": "s3://my-backup-bucket/postgres-backups/postgres-myapp-20250124105400.sql.gz",
  "success": true,
  "backup_size_bytes": 1048576,
  "duration_seconds": 2.45,
  "timestamp_utc": "2025-01-24T10:54:00.123456Z",
  "cron_schedule": "0 2 * * *",
  "backup_prefix": "postgres-backups",
  "destination_type": "s3"
}`

// failureBody is the README's failure payload example.
const failureBody = `{
  "container_id": "dbe737c824731c8f8c34e356d38a183502024c136a180618cf34ae08783ef649",
  "container_name": "myapp_postgres",
  "database_type": "postgres",
  "database_name": "myapp",
  "destination_url": "",
  "success": false,
  "error": "connection refused: database server is not responding",
  "duration_seconds": 30.0,
  "timestamp_utc": "2025-01-24T10:54:00.123456Z",
  "cron_schedule": "0 2 * * *",
  "backup_prefix": "postgres-backups",
  "destination_type": "s3"
}`

type server struct {
	url    string
	logs   *syncBuffer
	record string
}

type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

func start(t *testing.T) server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "payloads.jsonl")
	rec, err := openRecorder(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close() })
	logs := newSyncBuffer()
	ts := httptest.NewServer(NewHandler(secret, rec, log.New(logs, "", 0)))
	t.Cleanup(ts.Close)
	return server{url: ts.URL, logs: logs, record: path}
}

func post(t *testing.T, url, body string, sig *string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/webhook", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "LabelBackupAgent/1.0")
	if sig != nil {
		req.Header.Set(SignatureHeader, *sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func records(t *testing.T, path string) []Payload {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Payload
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var p Payload
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("record line %q: %v", sc.Text(), err)
		}
		out = append(out, p)
	}
	return out
}

func TestValidSignatureAccepted(t *testing.T) {
	s := start(t)
	for _, body := range []string{successBody, failureBody} {
		sig := Sign(secret, []byte(body))
		code, resp := post(t, s.url, body, &sig)
		if code != http.StatusOK || !strings.Contains(resp, `"received":true`) {
			t.Fatalf("status %d %s, want 200 received", code, resp)
		}
	}
	logs := s.logs.String()
	for _, want := range []string{
		"✅ Backup successful for myapp_postgres",
		"   Database: postgres/myapp",
		"   Size: 1.00 MB",
		"   Duration: 2.45s",
		"   Destination: s3://my-backup-bucket/",
		"❌ Backup failed for myapp_postgres",
		"   Error: connection refused: database server is not responding",
		"   Duration: 30s",
		"Backup event at 2025-01-24T10:54:00.123456Z for container dbe737c8",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	got := records(t, s.record)
	if len(got) != 2 || !got[0].Success || got[1].Success || got[0].BackupSizeBytes == nil || *got[0].BackupSizeBytes != 1048576 ||
		got[1].Error == "" || got[1].BackupSizeBytes != nil {
		t.Errorf("recorded %+v", got)
	}
}

func TestBadSignatureRejected(t *testing.T) {
	s := start(t)
	good := Sign(secret, []byte(successBody))
	wrongSecret := Sign("another-secret", []byte(successBody))
	tampered := Sign(secret, []byte(successBody+" "))
	truncated := good[:len(good)-2]
	empty := ""
	cases := map[string]*string{
		"missing":      nil,
		"empty":        &empty,
		"wrong secret": &wrongSecret,
		"other body":   &tampered,
		"truncated":    &truncated,
	}
	for name, sig := range cases {
		code, resp := post(t, s.url, successBody, sig)
		if code != http.StatusUnauthorized || !strings.Contains(resp, "Invalid signature") {
			t.Errorf("%s: status %d %s, want 401", name, code, resp)
		}
	}
	// A valid signature of a body that then changed in transit.
	code, _ := post(t, s.url, strings.Replace(successBody, "true", "false", 1), &good)
	if code != http.StatusUnauthorized {
		t.Errorf("modified body: status %d, want 401", code)
	}
	if !strings.Contains(s.logs.String(), "Invalid webhook signature") {
		t.Errorf("rejections not logged:\n%s", s.logs.String())
	}
	if got := records(t, s.record); len(got) != 0 {
		t.Errorf("rejected payloads were recorded: %+v", got)
	}
}

func TestEmptySecretRejectsEverything(t *testing.T) {
	if Verify("", []byte("{}"), Sign("", []byte("{}"))) {
		t.Error("an empty secret verified a signature")
	}
}

func TestOtherRoutes(t *testing.T) {
	s := start(t)
	resp, err := http.Get(s.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /health: %d", resp.StatusCode)
	}
	resp, err = http.Get(s.url + "/webhook")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /webhook: %d, want 405", resp.StatusCode)
	}
}

// opensslSign runs the README's recipe:
//
//	echo -n "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -hex | cut -d' ' -f2
func opensslSign(t *testing.T, secret, body string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl not installed: run scripts/install-deps.sh")
	}
	cmd := exec.Command("bash", "-c", `echo -n "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -hex | cut -d' ' -f2`)
	cmd.Env = append(os.Environ(), "BODY="+body, "SECRET="+secret)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl recipe: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestOpenSSLRecipeAccepted(t *testing.T) {
	s := start(t)
	for _, body := range []string{`{"test":"data"}`, successBody} {
		sig := opensslSign(t, secret, body)
		if sig != Sign(secret, []byte(body)) {
			t.Fatalf("openssl gave %q, Sign gives %q", sig, Sign(secret, []byte(body)))
		}
		if code, resp := post(t, s.url, body, &sig); code != http.StatusOK {
			t.Errorf("openssl-signed body: status %d %s", code, resp)
		}
	}
}

// TestVerifyIsTimingSafe checks, in the source, that Verify compares with
// crypto/hmac.Equal and with no == or bytes/strings comparison, which would
// return at the first differing byte.
func TestVerifyIsTimingSafe(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "receiver.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var verify *ast.FuncDecl
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "Verify" {
			verify = fd
		}
	}
	if verify == nil {
		t.Fatal("no Verify function")
	}
	var usesHMACEqual bool
	ast.Inspect(verify.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok {
				switch {
				case id.Name == "hmac" && n.Sel.Name == "Equal":
					usesHMACEqual = true
				case (id.Name == "bytes" || id.Name == "strings") && (n.Sel.Name == "Equal" || n.Sel.Name == "Compare" || n.Sel.Name == "EqualFold"):
					t.Errorf("Verify uses %s.%s, which is not timing-safe", id.Name, n.Sel.Name)
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL {
				// Only the emptiness checks may use ==.
				if lit, ok := n.Y.(*ast.BasicLit); !ok || lit.Value != `""` {
					t.Errorf("Verify compares with ==")
				}
			}
		}
		return true
	})
	if !usesHMACEqual {
		t.Error("Verify does not use hmac.Equal")
	}
}

// TestBinary builds the command and drives it as the agent and the README
// recipe would: PORT and WEBHOOK_SECRET from the environment, -record.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "webhook-receiver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	record := filepath.Join(dir, "rec.jsonl")
	var out bytes.Buffer
	cmd := exec.Command(bin, "-record", record)
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret, "PORT="+itoa(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := "http://127.0.0.1:" + itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	sig := opensslSign(t, secret, failureBody)
	if code, resp := post(t, url, failureBody, &sig); code != http.StatusOK {
		t.Fatalf("status %d %s", code, resp)
	}
	bad := "00"
	if code, _ := post(t, url, failureBody, &bad); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: status %d", code)
	}
	if got := records(t, record); len(got) != 1 || got[0].Error == "" {
		t.Errorf("recorded %+v", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
