package itest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// S3 is a real S3-compatible server (versitygw, posix backend) on loopback.
type S3 struct {
	Endpoint  string
	AccessKey string
	SecretKey string
	Bucket    string
	// Root is the posix backend's directory: objects are files under
	// Root/<bucket>/<key>.
	Root string
}

// VersityGWBinary finds versitygw: $LB_VERSITYGW, else the tool cache that
// scripts/install-deps.sh --with-s3 fills.
func VersityGWBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("LB_VERSITYGW"); p != "" {
		return p
	}
	tools := os.Getenv("LB_TOOLS")
	if tools == "" {
		tools = filepath.Join(os.Getenv("HOME"), ".cache", "label-backup", "tools")
	}
	p := filepath.Join(tools, "versitygw@v1.8.0", "versitygw")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("itest: versitygw not found at %s: run scripts/install-deps.sh --with-s3", p)
	}
	return p
}

// StartS3 starts versitygw with one empty bucket and stops it when the test
// ends. Its data lives under the state directory (xattrs work there).
func StartS3(t testing.TB) *S3 {
	t.Helper()
	root, err := os.MkdirTemp(filepath.Join(StateDir()), "s3-")
	if err != nil {
		t.Fatalf("itest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	s := &S3{AccessKey: "itestaccess", SecretKey: "itest-secret-" + randomHex(6), Bucket: "backups", Root: root}
	// The posix backend treats a top-level directory as a bucket.
	if err := os.Mkdir(filepath.Join(root, s.Bucket), 0o755); err != nil {
		t.Fatalf("itest: %v", err)
	}
	port := FreePort(t)
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(VersityGWBinary(t), "--port", fmt.Sprintf("127.0.0.1:%d", port), "--quiet", "posix", root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("itest: starting versitygw: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("itest: versitygw did not listen within 15s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// AgentEnv is the environment that points the agent at this server.
func (s *S3) AgentEnv() map[string]string {
	return map[string]string{
		"BUCKET_NAME": s.Bucket, "ENDPOINT": s.Endpoint, "REGION": "us-east-1",
		"ACCESS_KEY_ID": s.AccessKey, "SECRET_ACCESS_KEY": s.SecretKey, "S3_USE_PATH_STYLE": "true",
	}
}

// Path is where the posix backend keeps an object.
func (s *S3) Path(key string) string { return filepath.Join(s.Root, s.Bucket, filepath.FromSlash(key)) }
