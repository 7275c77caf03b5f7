package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/labelbackup/label-backup/sdk"
)

func TestInfo(t *testing.T) {
	info := New().Info()
	if info.Name != "s3" || info.Version != "0.1.0" || info.Kind != sdk.KindSink {
		t.Errorf("info = %+v", info)
	}
	for _, c := range []string{sdk.CapGet, sdk.CapList, sdk.CapStat, sdk.CapDelete} {
		if !info.Has(c) {
			t.Errorf("capability %q missing", c)
		}
	}
	names := map[string]sdk.Option{}
	for _, o := range info.Options {
		names[o.Name] = o
	}
	for _, n := range knownSettings {
		if _, ok := names[n]; !ok {
			t.Errorf("setting %q is not described", n)
		}
	}
	if !names["secret_access_key"].Secret || !names["bucket"].Required {
		t.Error("secret_access_key must be secret and bucket required")
	}
}

func TestConfigureRejects(t *testing.T) {
	const secret = "Sekr1t-in-settings-0099"
	base := func(kv ...string) map[string]string {
		m := map[string]string{"bucket": "backups", "stale_upload_age": "off"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for name, settings := range map[string]map[string]string{
		"unknown setting":      base("buckett", "x"),
		"S3_ style name":       base("BUCKET_NAME", "x"),
		"no bucket":            {"region": "eu-west-1"},
		"bucket with slash":    base("bucket", "a/b"),
		"part size too small":  base("part_size", "1048576"),
		"part size too big":    base("part_size", "6000000000"),
		"part size not number": base("part_size", "8MiB"),
		"concurrency 0":        base("concurrency", "0"),
		"concurrency huge":     base("concurrency", "1000"),
		"path style maybe":     base("use_path_style", "maybe"),
		"stale age negative":   base("stale_upload_age", "-1h"),
		"stale age garbage":    base("stale_upload_age", "soon"),
		"endpoint ftp":         base("endpoint", "ftp://host"),
		"endpoint no scheme":   base("endpoint", "minio:9000"),
		"endpoint userinfo":    base("endpoint", "http://user:"+secret+"@minio:9000"),
		"key id alone":         base("access_key_id", "AKIA"),
		"secret alone":         base("secret_access_key", secret),
	} {
		t.Run(name, func(t *testing.T) {
			err := New().Configure(context.Background(), settings)
			wantErr(t, "configure", err, sdk.ErrInvalidArgument)
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("error echoes a secret: %v", err)
			}
		})
	}
}

func TestConfigureDefaults(t *testing.T) {
	cfg, err := parseSettings(map[string]string{"bucket": "backups"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.region != "us-east-1" || cfg.partSize != 8<<20 || cfg.concurrency != 2 || cfg.pathStyle || cfg.staleAge.Hours() != 1 || cfg.noCleanup {
		t.Errorf("defaults = %+v", cfg)
	}
	cfg, err = parseSettings(map[string]string{
		"bucket": "b_legacy.Name", "region": "eu-west-3", "endpoint": "https://s3.example.test/",
		"use_path_style": "TRUE", "part_size": "5242880", "concurrency": "4", "stale_upload_age": "90m",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.endpoint != "https://s3.example.test" || !cfg.pathStyle || cfg.partSize != 5<<20 || cfg.concurrency != 4 || cfg.staleAge.Minutes() != 90 {
		t.Errorf("parsed = %+v", cfg)
	}
}

func TestNotConfigured(t *testing.T) {
	s := New()
	_, err := s.CheckReady(context.Background())
	wantErr(t, "check ready", err, sdk.ErrInvalidArgument)
	_, err = s.Put(context.Background(), sdk.PutRequest{Key: "a"}, strings.NewReader("x"))
	wantErr(t, "put", err, sdk.ErrInvalidArgument)
}

func TestKeys(t *testing.T) {
	for _, k := range []string{"a", "a/b.dump.gz", "pg/db-20250101T000000Z-9f86.dump", "..x/y", "a/.hidden", "é/ü"} {
		if err := checkKey(k); err != nil {
			t.Errorf("checkKey(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", "/a", "a/", "a//b", "./a", "a/./b", "..", "../a", "a/../b", "a\\b", "a\x00b", "a\nb", "\xff", strings.Repeat("x", 1025)} {
		if err := checkKey(k); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("checkKey(%q) = %v, want ErrInvalidArgument", k, err)
		}
	}
	for _, p := range []string{"", "app", "app/", "app/db-2025", "a/b/"} {
		if err := checkPrefix(p); err != nil {
			t.Errorf("checkPrefix(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"/", "/abs", "../", "a//", "a/../b/", "a\\"} {
		if err := checkPrefix(p); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("checkPrefix(%q) = %v, want ErrInvalidArgument", p, err)
		}
	}
}

func TestPartPlan(t *testing.T) {
	for _, base := range []int64{minPartSize, 6 << 20, defaultPartSize, 16 << 20, 100<<20 + 1, 524 << 20, 600 << 20, 1 << 30, maxPartSize} {
		t.Run(fmt.Sprint(base), func(t *testing.T) {
			p := newPartPlan(base)
			if p.tiers[0] != base {
				t.Errorf("first tier %d, want the configured %d", p.tiers[0], base)
			}
			if c := p.capacity(); c < maxObjectSize {
				t.Errorf("10,000 parts hold %d bytes, less than 5 TiB", c)
			}
			for i, s := range p.tiers {
				if s < minPartSize || s > maxPartSize {
					t.Errorf("tier %d: part size %d outside S3's limits", i, s)
				}
				if i > 0 && s < p.tiers[i-1] {
					t.Errorf("tier %d: part size shrinks from %d to %d", i, p.tiers[i-1], s)
				}
			}
			if p.size(1) != p.tiers[0] || p.size(1000) != p.tiers[0] || p.size(1001) != p.tiers[1] || p.size(10000) != p.tiers[9] {
				t.Error("size(n) does not follow the tiers")
			}
		})
	}
	// The default keeps the largest part, and so the memory a huge backup
	// needs, well below S3's 5 GiB.
	if last := newPartPlan(defaultPartSize).tiers[numTiers-1]; last > 3<<30 {
		t.Errorf("default plan's largest part is %d bytes", last)
	}
	if p := newPartPlan(1 << 30); p.tiers[9] != 1<<30 {
		t.Errorf("1 GiB parts need no growth, got %v", p.tiers)
	}
}

// TestBufferReuse checks that an upload holds at most concurrency+1
// buffers and drops those the plan outgrew.
func TestBufferReuse(t *testing.T) {
	u := &upload{free: make(chan []byte, 3), failed: make(chan struct{})}
	var bufs [][]byte
	for range 3 {
		b, err := u.buffer(5 << 20)
		if err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, b)
	}
	if u.allocated != 3 {
		t.Fatalf("allocated %d", u.allocated)
	}
	u.release(bufs[0])
	b, _ := u.buffer(5 << 20)
	if &b[0] != &bufs[0][0] {
		t.Error("a free buffer of the right size was not reused")
	}
	u.release(b)
	b, _ = u.buffer(10 << 20)
	if len(b) != 10<<20 || u.allocated != 3 {
		t.Errorf("grown buffer: %d bytes, %d allocated", len(b), u.allocated)
	}
	// All three in use: the next call waits, and a part failure ends it.
	done := make(chan error)
	go func() { _, err := u.buffer(5 << 20); done <- err }()
	u.cancel = func() {}
	u.fail(fmt.Errorf("part failed: %w", sdk.ErrUnavailable))
	wantErr(t, "buffer after failure", <-done, sdk.ErrUnavailable)
}

// fakeS3 answers every request with one canned error, except that it can
// start multipart uploads; it records the requests it got.
type fakeS3 struct {
	status  int
	code    string
	message string
	header  map[string]string
	// initiate, when set, makes POST ?uploads succeed.
	initiate bool
	// onRequest, when set, sees every request as "METHOD query".
	onRequest func(string)

	mu      sync.Mutex
	reqs    []string
	aborted bool
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Method+" "+r.URL.RawQuery)
	f.mu.Unlock()
	if f.onRequest != nil {
		f.onRequest(r.Method + " " + r.URL.RawQuery)
	}
	if f.initiate && r.Method == http.MethodPost && r.URL.Query().Has("uploads") {
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>up-1</UploadId></InitiateMultipartUploadResult>`)
		return
	}
	if r.Method == http.MethodDelete && r.URL.Query().Has("uploadId") {
		f.mu.Lock()
		f.aborted = true
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	f.mu.Lock()
	aborted := f.aborted
	f.mu.Unlock()
	if aborted && r.Method == http.MethodGet && r.URL.Query().Has("uploadId") {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>`)
		return
	}
	for k, v := range f.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(f.status)
	if r.Method != http.MethodHead {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>r1</RequestId></Error>`, f.code, f.message)
	}
}

func (f *fakeS3) requests() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.reqs, "; ")
}

// fakeSink is a sink configured against endpoint, without retries.
func fakeSink(t *testing.T, endpoint string) *Sink {
	t.Helper()
	s := New()
	s.clientOpts = append(s.clientOpts, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	err := s.Configure(context.Background(), map[string]string{
		"bucket": "bkt", "endpoint": endpoint, "use_path_style": "true", "stale_upload_age": "off",
		"access_key_id": testAccessKey, "secret_access_key": testSecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestErrorClassification checks how S3 errors map to SDK sentinels, for
// every kind of operation.
func TestErrorClassification(t *testing.T) {
	ctx := context.Background()
	ops := map[string]func(s *Sink) error{
		"check ready": func(s *Sink) error { _, err := s.CheckReady(ctx); return err },
		"put": func(s *Sink) error {
			_, err := s.Put(ctx, sdk.PutRequest{Key: "k"}, strings.NewReader("data"))
			return err
		},
		"put empty": func(s *Sink) error { _, err := s.Put(ctx, sdk.PutRequest{Key: "k"}, strings.NewReader("")); return err },
		"get":       func(s *Sink) error { return s.Get(ctx, "k", io.Discard) },
		"stat":      func(s *Sink) error { _, err := s.Stat(ctx, "k"); return err },
		"list":      func(s *Sink) error { _, err := s.List(ctx, sdk.ListRequest{}); return err },
		"delete":    func(s *Sink) error { return s.Delete(ctx, "k") },
	}
	for _, tc := range []struct {
		status int
		code   string
		want   error
	}{
		{404, "NoSuchKey", sdk.ErrNotFound},
		{404, "NoSuchBucket", sdk.ErrNotFound},
		{403, "InvalidAccessKeyId", sdk.ErrUnauthenticated},
		{403, "SignatureDoesNotMatch", sdk.ErrUnauthenticated},
		{404, "XAdminUserNotFound", sdk.ErrUnauthenticated},
		{403, "AccessDenied", sdk.ErrPermission},
		{503, "SlowDown", sdk.ErrUnavailable},
		{500, "InternalError", sdk.ErrUnavailable},
		{502, "WhateverProxiesSay", sdk.ErrUnavailable},
		{507, "XMinioStorageFull", sdk.ErrNoSpace},
		{400, "BadDigest", sdk.ErrIntegrity},
		{400, "InvalidArgument", sdk.ErrInvalidArgument},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.code), func(t *testing.T) {
			f := &fakeS3{status: tc.status, code: tc.code, message: "failed for " + testSecretKey}
			srv := httptest.NewServer(f)
			defer srv.Close()
			s := fakeSink(t, srv.URL)
			for name, op := range ops {
				err := op(s)
				wantErr(t, name, err, tc.want)
				if err != nil && strings.Contains(err.Error(), testSecretKey) {
					t.Errorf("%s: error text holds the secret: %v", name, err)
				}
			}
		})
	}
}

// TestHeadWithoutBody: a HEAD 403 is refined with a GET that tells
// rejected credentials from a denied permission, and a 301 names the
// bucket's region.
func TestHeadWithoutBody(t *testing.T) {
	f := &fakeS3{status: 403, code: "AccessDenied"}
	srv := httptest.NewServer(f)
	defer srv.Close()
	_, err := fakeSink(t, srv.URL).CheckReady(context.Background())
	wantErr(t, "check ready, access denied", err, sdk.ErrPermission)

	f.code = "Bogus"
	_, err = fakeSink(t, srv.URL).Stat(context.Background(), "k")
	wantErr(t, "stat, bare 403", err, sdk.ErrUnauthenticated)

	f.status, f.code, f.header = 301, "PermanentRedirect", map[string]string{"X-Amz-Bucket-Region": "eu-central-1"}
	_, err = fakeSink(t, srv.URL).CheckReady(context.Background())
	wantErr(t, "check ready, wrong region", err, sdk.ErrInvalidArgument)
	if err != nil && !strings.Contains(err.Error(), "eu-central-1") {
		t.Errorf("wrong-region error does not name the region: %v", err)
	}
}

// TestPartFailureAborts: when a part fails, the upload is aborted.
func TestPartFailureAborts(t *testing.T) {
	f := &fakeS3{status: 500, code: "InternalError", initiate: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	_, err := fakeSink(t, srv.URL).Put(context.Background(), sdk.PutRequest{Key: "k"}, newDataReader(6<<20, 1))
	wantErr(t, "put", err, sdk.ErrUnavailable)
	reqs := f.requests()
	if !strings.Contains(reqs, "DELETE uploadId=up-1") || !strings.Contains(reqs, "GET max-parts=1&uploadId=up-1") {
		t.Errorf("no abort, or no check that it worked, after a failed part; requests: %s", reqs)
	}
	if strings.Contains(reqs, "POST uploadId=up-1") {
		t.Errorf("a failed upload was completed; requests: %s", reqs)
	}
}

// TestBrokenStreamNeverCompletes: a reader error (a broken or mismatched
// upload) aborts, even after whole parts went up.
func TestBrokenStreamNeverCompletes(t *testing.T) {
	partSent := make(chan struct{})
	var once sync.Once
	f := &fakeS3{status: 200, initiate: true, onRequest: func(req string) {
		if strings.HasPrefix(req, "PUT partNumber=1&") {
			once.Do(func() { close(partSent) })
		}
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	// The stream breaks only once the first part is stored.
	r := io.MultiReader(newDataReader(9<<20, 1), waitReader{partSent}, errReader{fmt.Errorf("trailer mismatch: %w", sdk.ErrIntegrity)})
	_, err := fakeSink(t, srv.URL).Put(context.Background(), sdk.PutRequest{Key: "k"}, r)
	wantErr(t, "put", err, sdk.ErrIntegrity)
	reqs := f.requests()
	if !strings.Contains(reqs, "PUT partNumber=1&uploadId=up-1") || !strings.Contains(reqs, "DELETE uploadId=up-1") || strings.Contains(reqs, "POST uploadId=up-1") {
		t.Errorf("want a part, an abort and no completion; requests: %s", reqs)
	}
}

// TestServerHangsUp: a server that drops connections is unavailable.
func TestServerHangsUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, err = fakeSink(t, "http://"+l.Addr().String()).CheckReady(context.Background())
	wantErr(t, "check ready", err, sdk.ErrUnavailable)
	_, err = fakeSink(t, "http://"+closedAddr(t)).Stat(context.Background(), "k")
	wantErr(t, "stat, connection refused", err, sdk.ErrUnavailable)
}

// waitReader blocks until ready is closed (or a while passes), then ends.
type waitReader struct{ ready chan struct{} }

func (r waitReader) Read([]byte) (int, error) {
	select {
	case <-r.ready:
	case <-time.After(30 * time.Second):
	}
	return 0, io.EOF
}
