package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// dataReader yields n deterministic pseudo-random bytes, then io.EOF: a
// random block derived from seed, repeated (cheap even under -race).
// onRead, when set, sees the running total after every read.
type dataReader struct {
	block  []byte
	n, off int64
	onRead func(total int64)
}

func newDataReader(n int64, seed uint64) *dataReader {
	block := make([]byte, 1<<20+8*7) // not a divisor of any part size
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i < len(block); i += 8 {
		binary.LittleEndian.PutUint64(block[i:], rng.Uint64())
	}
	return &dataReader{block: block, n: n}
}

func (r *dataReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off, 1<<20)]
	k := 0
	for k < len(p) {
		k += copy(p[k:], r.block[(r.off+int64(k))%int64(len(r.block)):])
	}
	r.off += int64(k)
	if r.onRead != nil {
		r.onRead(r.off)
	}
	return k, nil
}

func digestOf(t *testing.T, r io.Reader) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

// TestMultipartRoundTrip streams ~40 MiB through the gRPC shims in 5 MiB
// parts and reads it back.
func TestMultipartRoundTrip(t *testing.T) {
	bucket := gw.newBucket(t)
	c := sdktest.SinkClient(t, New())
	ctx := context.Background()
	if err := c.Configure(ctx, gw.settings(bucket, "part_size", "5242880", "concurrency", "2")); err != nil {
		t.Fatal(err)
	}
	const size = 40<<20 + 12345
	want := digestOf(t, newDataReader(size, 7))
	obj, err := c.Put(ctx, sdk.PutRequest{Key: "big/db.dump.gz", ContentType: "application/gzip"}, newDataReader(size, 7))
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != size || obj.URL != "s3://"+bucket+"/big/db.dump.gz" || !bytes.Equal(obj.SHA256, want[:]) {
		t.Errorf("put = %d bytes at %q sha %x", obj.Size, obj.URL, obj.SHA256)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(c.Get(ctx, "big/db.dump.gz", pw)) }()
	if got := digestOf(t, pr); got != want {
		t.Error("object read back differs from what was put")
	}
	head, err := gw.client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("big/db.dump.gz")})
	if err != nil {
		t.Fatal(err)
	}
	// A multipart object's ETag ends in "-<parts>": 40 MiB + a bit in 5 MiB
	// parts is 9.
	if etag := aws.ToString(head.ETag); !strings.HasSuffix(strings.Trim(etag, `"`), "-9") {
		t.Errorf("ETag %s: want a multipart upload of 9 parts", etag)
	}
	if ct := aws.ToString(head.ContentType); ct != "application/gzip" {
		t.Errorf("content type %q", ct)
	}
	if left := gw.uploads(t, bucket); len(left) != 0 {
		t.Errorf("uploads left after success: %v", left)
	}
}

// TestCancelMidStream cancels a put after several parts went up: no
// object and no multipart upload may remain.
func TestCancelMidStream(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		bucket := gw.newBucket(t)
		s := newTestSink(t, gw, bucket, "part_size", "5242880")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := newDataReader(1<<30, 3)
		r.onRead = func(total int64) {
			if total >= 17<<20 {
				cancel() // the reader keeps delivering: only the sink can stop
			}
		}
		_, err := s.Put(ctx, sdk.PutRequest{Key: "cancel/obj"}, r)
		wantErr(t, "cancelled put", err, context.Canceled)
		if r.off > 40<<20 {
			t.Errorf("the sink read %d bytes after the cancellation", r.off)
		}
		if left := gw.uploads(t, bucket); len(left) != 0 {
			t.Errorf("multipart uploads left: %v", left)
		}
		if objs := gw.objects(t, bucket); len(objs) != 0 {
			t.Errorf("objects left: %v", objs)
		}
	})
	t.Run("grpc", func(t *testing.T) {
		bucket := gw.newBucket(t)
		s := &watchedSink{Sink: New(), done: make(chan error, 1)}
		c := sdktest.SinkClient(t, s)
		if err := c.Configure(context.Background(), gw.settings(bucket, "part_size", "5242880")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		w, err := c.OpenPut(ctx, sdk.PutRequest{Key: "cancel/obj"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, newDataReader(12<<20, 4)); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := w.Commit(); err == nil {
			t.Fatal("commit after cancel succeeded")
		}
		// The plugin notices the cancelled stream, aborts and returns.
		select {
		case err := <-s.done:
			wantErr(t, "the plugin's put", err, context.Canceled)
		case <-time.After(30 * time.Second):
			t.Fatal("the plugin's put did not return after the cancellation")
		}
		if left := gw.uploads(t, bucket); len(left) != 0 {
			t.Errorf("multipart uploads left: %v", left)
		}
		if objs := gw.objects(t, bucket); len(objs) != 0 {
			t.Errorf("objects left: %v", objs)
		}
	})
}

// watchedSink reports when its Put returns, and with what.
type watchedSink struct {
	*Sink
	done chan error
}

func (w *watchedSink) Put(ctx context.Context, req sdk.PutRequest, r io.Reader) (sdk.ObjectInfo, error) {
	obj, err := w.Sink.Put(ctx, req, r)
	w.done <- err
	return obj, err
}

// TestServerKilledMidUpload kills versitygw during a put: the put fails as
// unavailable, and once the server is back nothing partial is visible; the
// multipart upload the dead server kept is collected by the stale-upload
// cleanup.
func TestServerKilledMidUpload(t *testing.T) {
	bin, err := versitygwBinary()
	if err != nil {
		t.Fatal(err)
	}
	g, err := startGateway(bin, t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.stop()
	// t.TempDir is on the same filesystem as TestMain's directory only by
	// chance; the gateway started, so it has the xattrs it needs.
	bucket := g.newBucket(t)
	s := newTestSink(t, g, bucket, "part_size", "5242880")
	r := newDataReader(1<<30, 5)
	killed := false
	r.onRead = func(total int64) {
		if total >= 13<<20 && !killed {
			killed = true
			g.kill()
		}
	}
	start := time.Now()
	_, err = s.Put(context.Background(), sdk.PutRequest{Key: "crash/obj"}, r)
	wantErr(t, "put while the server dies", err, sdk.ErrUnavailable)
	if err != nil && strings.Contains(err.Error(), testSecretKey) {
		t.Errorf("error reveals the secret: %v", err)
	}
	t.Logf("put failed after %v: %v", time.Since(start).Round(time.Millisecond), err)

	if err := g.start(); err != nil {
		t.Fatal(err)
	}
	if objs := g.objects(t, bucket); len(objs) != 0 {
		t.Errorf("objects visible after the crash: %v", objs)
	}
	_, err = s.Stat(context.Background(), "crash/obj")
	wantErr(t, "stat after the crash", err, sdk.ErrNotFound)

	// The dead server could not be told to abort; the next Configure
	// collects the leftover (here: at once, with stale_upload_age 0s).
	newTestSink(t, g, bucket, "stale_upload_age", "0s")
	if left := g.uploads(t, bucket); len(left) != 0 {
		t.Errorf("uploads left after cleanup: %v", left)
	}
}

// TestWrongCredentials: a wrong secret or key id is ErrUnauthenticated on
// every operation, and no error text contains a secret.
func TestWrongCredentials(t *testing.T) {
	bucket := gw.newBucket(t)
	const wrongSecret = "Wr0ngS3cret-do-not-print-4411"
	for _, tc := range []struct {
		name     string
		settings []string
	}{
		{"secret", []string{"secret_access_key", wrongSecret}},
		{"key id", []string{"access_key_id", "nosuchkeyid", "secret_access_key", wrongSecret}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSink(t, gw, bucket, append(tc.settings, "stale_upload_age", "off")...)
			ctx := context.Background()
			_, ready := s.CheckReady(ctx)
			_, put := s.Put(ctx, sdk.PutRequest{Key: "a/b"}, newDataReader(100, 1))
			_, putEmpty := s.Put(ctx, sdk.PutRequest{Key: "a/empty"}, strings.NewReader(""))
			_, stat := s.Stat(ctx, "a/b")
			_, list := s.List(ctx, sdk.ListRequest{})
			get := s.Get(ctx, "a/b", io.Discard)
			del := s.Delete(ctx, "a/b")
			for what, err := range map[string]error{
				"check ready": ready, "put": put, "put empty": putEmpty, "stat": stat, "list": list, "get": get, "delete": del,
			} {
				wantErr(t, what, err, sdk.ErrUnauthenticated)
				if err != nil && (strings.Contains(err.Error(), wrongSecret) || strings.Contains(err.Error(), testSecretKey)) {
					t.Errorf("%s: error reveals a secret: %v", what, err)
				}
			}
		})
	}
	if objs := gw.objects(t, bucket); len(objs) != 0 {
		t.Errorf("objects stored with wrong credentials: %v", objs)
	}
}

// TestMissingBucket: every operation on a bucket that does not exist is
// ErrNotFound, and CheckReady names the bucket.
func TestMissingBucket(t *testing.T) {
	s := newTestSink(t, gw, "lbtest-no-such-bucket", "stale_upload_age", "off")
	ctx := context.Background()
	detail, err := s.CheckReady(ctx)
	wantErr(t, "check ready", err, sdk.ErrNotFound)
	if err != nil && !strings.Contains(err.Error(), `"lbtest-no-such-bucket"`) {
		t.Errorf("check ready error does not name the bucket: %v", err)
	}
	if detail != "" {
		t.Errorf("detail %q on failure", detail)
	}
	_, err = s.Put(ctx, sdk.PutRequest{Key: "a/b"}, newDataReader(100, 1))
	wantErr(t, "put", err, sdk.ErrNotFound)
	_, err = s.List(ctx, sdk.ListRequest{Prefix: "a/"})
	wantErr(t, "list", err, sdk.ErrNotFound)
	_, err = s.Stat(ctx, "a/b")
	wantErr(t, "stat", err, sdk.ErrNotFound)
}

// TestUnreachable: a server that is not there is ErrUnavailable.
func TestUnreachable(t *testing.T) {
	s := New()
	s.clientOpts = append(s.clientOpts, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	settings := gw.settings("lbtest-any", "endpoint", "http://"+closedAddr(t), "stale_upload_age", "off")
	if err := s.Configure(context.Background(), settings); err != nil {
		t.Fatal(err)
	}
	_, err := s.CheckReady(context.Background())
	wantErr(t, "check ready", err, sdk.ErrUnavailable)
	_, err = s.Put(context.Background(), sdk.PutRequest{Key: "a/b"}, newDataReader(100, 1))
	wantErr(t, "put", err, sdk.ErrUnavailable)
}

// TestConfigureDoesNotFailOnUnreachable: the cleanup Configure runs is
// best effort.
func TestConfigureDoesNotFailOnUnreachable(t *testing.T) {
	s := New()
	s.clientOpts = append(s.clientOpts, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	if err := s.Configure(context.Background(), gw.settings("lbtest-any", "endpoint", "http://"+closedAddr(t))); err != nil {
		t.Fatalf("configure failed because the cleanup could not reach the server: %v", err)
	}
}

// TestStaleUploadCleanup: Configure aborts multipart uploads idle for
// longer than stale_upload_age, and only those.
func TestStaleUploadCleanup(t *testing.T) {
	bucket := gw.newBucket(t)
	cl := gw.client()
	ctx := context.Background()
	create := func(key string) string {
		out, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.UploadId)
	}
	uploadPart := func(key, id string) {
		_, err := cl.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(id),
			PartNumber: aws.Int32(1), Body: bytes.NewReader(make([]byte, 1000)),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	idWithPart := create("dangling/with-part")
	uploadPart("dangling/with-part", idWithPart)
	create("dangling/no-part")

	// Fresh uploads survive the default age (1h).
	newTestSink(t, gw, bucket)
	if left := gw.uploads(t, bucket); len(left) != 2 {
		t.Fatalf("uploads after a cleanup with the default age: %v, want the 2 fresh ones", left)
	}

	// An upload that is old but still receiving parts is alive.
	time.Sleep(2100 * time.Millisecond)
	uploadPart("dangling/with-part", idWithPart)
	s := newTestSink(t, gw, bucket, "stale_upload_age", "2s")
	if left := gw.uploads(t, bucket); len(left) != 1 || !strings.HasPrefix(left[0], "dangling/with-part ") {
		t.Fatalf("uploads after cleanup with 2s: %v, want only the one that just got a part", left)
	}
	time.Sleep(2100 * time.Millisecond)
	n, err := s.Cleanup(ctx)
	if err != nil || n != 1 {
		t.Errorf("Cleanup = %d, %v; want 1 aborted", n, err)
	}
	if left := gw.uploads(t, bucket); len(left) != 0 {
		t.Errorf("uploads left: %v", left)
	}
	// "off" disables it.
	create("dangling/kept")
	newTestSink(t, gw, bucket, "stale_upload_age", "off")
	if left := gw.uploads(t, bucket); len(left) != 1 {
		t.Errorf("uploads with cleanup off: %v, want 1", left)
	}
	newTestSink(t, gw, bucket, "stale_upload_age", "0s")
	if left := gw.uploads(t, bucket); len(left) != 0 {
		t.Errorf("uploads left with 0s: %v", left)
	}
}

// TestListPagesAndSkips checks List's paging over more keys than one S3
// page holds, and that keys no sink could address are skipped.
func TestListPagesAndSkips(t *testing.T) {
	bucket := gw.newBucket(t)
	s := newTestSink(t, gw, bucket)
	ctx := context.Background()
	for _, k := range []string{"p/a", "p/b", "p/c", "p/d", "p/e"} {
		if _, err := s.Put(ctx, sdk.PutRequest{Key: k}, strings.NewReader(k)); err != nil {
			t.Fatal(err)
		}
	}
	// A folder marker as consoles create them: not an object of ours.
	if _, err := gw.client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/dir/"), Body: bytes.NewReader(nil)}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	token := ""
	pages := 0
	for {
		page, err := s.List(ctx, sdk.ListRequest{Prefix: "p/", PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
			if o.URL != "s3://"+bucket+"/"+o.Key || o.Modified.IsZero() || o.Size != int64(len(o.Key)) {
				t.Errorf("listed %+v", o)
			}
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	if strings.Join(keys, ",") != "p/a,p/b,p/c,p/d,p/e" || pages < 3 {
		t.Errorf("listed %v in %d pages", keys, pages)
	}
	_, err := s.List(ctx, sdk.ListRequest{Prefix: "../x"})
	wantErr(t, "list ../x", err, sdk.ErrInvalidArgument)
	_, err = s.List(ctx, sdk.ListRequest{PageSize: 5000})
	if err != nil {
		t.Errorf("list with a page size over 1000: %v", err)
	}
}

// TestOverwriteKeepsOldUntilComplete: a failed upload over an existing
// object leaves the old object whole.
func TestOverwriteKeepsOldUntilComplete(t *testing.T) {
	bucket := gw.newBucket(t)
	s := newTestSink(t, gw, bucket, "part_size", "5242880")
	ctx := context.Background()
	if _, err := s.Put(ctx, sdk.PutRequest{Key: "k"}, strings.NewReader("old")); err != nil {
		t.Fatal(err)
	}
	broken := io.MultiReader(newDataReader(11<<20, 9), errReader{errors.New("stream broken: " + sdk.ErrIntegrity.Error())})
	if _, err := s.Put(ctx, sdk.PutRequest{Key: "k"}, broken); err == nil {
		t.Fatal("put of a broken stream succeeded")
	}
	var b bytes.Buffer
	if err := s.Get(ctx, "k", &b); err != nil || b.String() != "old" {
		t.Errorf("after a failed overwrite: %q, %v", b.String(), err)
	}
	if left := gw.uploads(t, bucket); len(left) != 0 {
		t.Errorf("uploads left: %v", left)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestDefaultCredentialChain: without keys in the settings the sink uses
// the AWS default chain (here: the environment), and with no credentials
// anywhere it reports ErrUnauthenticated.
func TestDefaultCredentialChain(t *testing.T) {
	bucket := gw.newBucket(t)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
	settings := gw.settings(bucket, "stale_upload_age", "off")
	delete(settings, "access_key_id")
	delete(settings, "secret_access_key")
	s := New()
	if err := s.Configure(context.Background(), settings); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CheckReady(context.Background()); err != nil {
		t.Errorf("check ready with credentials from the environment: %v", err)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	s = New()
	if err := s.Configure(context.Background(), settings); err != nil {
		t.Fatal(err)
	}
	_, err := s.CheckReady(context.Background())
	wantErr(t, "check ready without any credentials", err, sdk.ErrUnauthenticated)
}
