package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Credentials of the test server. The secret is distinctive so tests can
// look for it in logs and error messages.
const (
	testAccessKey = "lbtestaccess"
	testSecretKey = "Sup3rS3cret-label-backup-7f3a9"
)

// gw is the versitygw server every integration test shares, started by
// TestMain.
var gw *gateway

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	bin, err := versitygwBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	root, err := xattrTempDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer os.RemoveAll(root)
	gw, err = startGateway(bin, filepath.Join(root, "data"), 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: starting versitygw:", err)
		return 1
	}
	defer gw.stop()
	return m.Run()
}

// versitygwBinary finds versitygw v1.8.0: $LB_VERSITYGW, else where
// scripts/install-deps.sh --with-s3 builds it.
func versitygwBinary() (string, error) {
	if p := os.Getenv("LB_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("LB_VERSITYGW=%s: %v (unset it to use the copy scripts/install-deps.sh --with-s3 builds)", p, err)
		}
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory to find versitygw in (%v); set LB_VERSITYGW or run scripts/install-deps.sh --with-s3", err)
	}
	p := filepath.Join(home, ".cache", "label-backup", "tools", "versitygw@v1.8.0", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw v1.8.0 is not installed at %s: run scripts/install-deps.sh --with-s3 (or set LB_VERSITYGW)", p)
	}
	return p, nil
}

// xattrTempDir makes a temporary directory on a filesystem with user
// extended attributes, which versitygw's posix backend needs (tmpfs may
// lack them; /var/tmp is usually on disk).
func xattrTempDir() (string, error) {
	var tried []string
	for _, parent := range []string{os.TempDir(), "/var/tmp"} {
		dir, err := os.MkdirTemp(parent, "lb-s3-test-")
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", parent, err))
			continue
		}
		if err := syscall.Setxattr(dir, "user.lbtest", []byte("1"), 0); err != nil {
			os.RemoveAll(dir)
			tried = append(tried, fmt.Sprintf("%s: no user xattrs (%v)", parent, err))
			continue
		}
		return dir, nil
	}
	return "", fmt.Errorf("no temporary directory with user xattrs for versitygw: %v", tried)
}

// gateway is one running versitygw.
type gateway struct {
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// startGateway runs versitygw over dir on port (0: a free one) and waits
// until it answers.
func startGateway(bin, dir string, port int) (*gateway, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	g := &gateway{bin: bin, dir: dir, port: port}
	return g, g.start()
}

func (g *gateway) start() error {
	cmd := exec.Command(g.bin, "--port", "127.0.0.1:"+strconv.Itoa(g.port), "--quiet", "posix", g.dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+testAccessKey, "ROOT_SECRET_KEY="+testSecretKey)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	g.cmd, g.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(g.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", g.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-g.done:
			return fmt.Errorf("versitygw exited at start: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			g.kill()
			return fmt.Errorf("versitygw does not answer on %s: %v", g.addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops the server at once, like a crash.
func (g *gateway) kill() {
	if g.cmd == nil {
		return
	}
	syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	<-g.done
	g.cmd = nil
}

func (g *gateway) stop() { g.kill() }

func (g *gateway) addr() string     { return "127.0.0.1:" + strconv.Itoa(g.port) }
func (g *gateway) endpoint() string { return "http://" + g.addr() }

// client is a plain SDK client of the server, for setting up and checking
// what the sink did behind its back.
func (g *gateway) client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(g.endpoint()),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
	})
}

var bucketSeq atomic.Int64

// newBucket creates a fresh, empty bucket and returns its name.
func (g *gateway) newBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("lbtest-%d-%d", os.Getpid(), bucketSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := g.client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// settings returns sink settings for bucket on g, with extra added.
func (g *gateway) settings(bucket string, extra ...string) map[string]string {
	m := map[string]string{
		"bucket":            bucket,
		"endpoint":          g.endpoint(),
		"access_key_id":     testAccessKey,
		"secret_access_key": testSecretKey,
		"use_path_style":    "true",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// newTestSink returns a sink configured for bucket on g.
func newTestSink(t testing.TB, g *gateway, bucket string, extra ...string) *Sink {
	t.Helper()
	s := New()
	if err := s.Configure(context.Background(), g.settings(bucket, extra...)); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return s
}

// uploads lists the multipart uploads in progress in bucket.
func (g *gateway) uploads(t testing.TB, bucket string) []string {
	t.Helper()
	out, err := g.client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
	}
	return keys
}

// objects lists every object in bucket.
func (g *gateway) objects(t testing.TB, bucket string) []string {
	t.Helper()
	out, err := g.client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list objects: %v", err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, fmt.Sprintf("%s (%d bytes)", aws.ToString(o.Key), aws.ToInt64(o.Size)))
	}
	return keys
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one wrapping %q", what, err, target)
	}
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
