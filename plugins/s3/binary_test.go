package s3

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// TestBinary builds the plugin binary and drives it the way the host does:
// a separate process over go-plugin, at debug log level. Its logs name the
// bucket and keys but never a secret.
func TestBinary(t *testing.T) {
	b := sdktest.StartBinary(t, "./cmd/label-backup-plugin-s3")
	if b.Info.Name != "s3" || b.Info.Kind != sdk.KindSink {
		t.Fatalf("describe: %+v", b.Info)
	}
	c := b.Sink(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	bucket := gw.newBucket(t)
	if err := c.Configure(ctx, gw.settings(bucket, "part_size", "5242880")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CheckReady(ctx); err != nil {
		t.Fatal(err)
	}
	const size = 6<<20 + 7
	obj, err := c.Put(ctx, sdk.PutRequest{Key: "bin/db.dump"}, newDataReader(size, 11))
	if err != nil || obj.Size != size || obj.URL != "s3://"+bucket+"/bin/db.dump" {
		t.Fatalf("put = %+v, %v", obj, err)
	}
	var got bytes.Buffer
	if err := c.Get(ctx, "bin/db.dump", &got); err != nil || got.Len() != size {
		t.Fatalf("get: %d bytes, %v", got.Len(), err)
	}
	if _, err := c.Stat(ctx, "bin/missing"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("stat missing: %v", err)
	}

	const wrongSecret = "Wr0ngS3cret-binary-test-5521"
	if err := c.Configure(ctx, gw.settings(bucket, "secret_access_key", wrongSecret)); err != nil {
		t.Fatal(err)
	}
	_, err = c.CheckReady(ctx)
	wantErr(t, "check ready with a wrong secret", err, sdk.ErrUnauthenticated)
	_, err = c.Put(ctx, sdk.PutRequest{Key: "bin/denied"}, newDataReader(100, 1))
	wantErr(t, "put with a wrong secret", err, sdk.ErrUnauthenticated)
	err = c.Configure(ctx, map[string]string{"bucket": bucket, "secret_access_key": testSecretKey})
	wantErr(t, "configure with a secret but no key id", err, sdk.ErrInvalidArgument)
	if err != nil && strings.Contains(err.Error(), testSecretKey) {
		t.Errorf("configure error echoes the secret: %v", err)
	}

	b.Stop()
	out := b.Logs()
	if testing.Verbose() {
		t.Log(out)
	}
	for _, want := range []string{"s3 sink configured", "put finished", "put failed", bucket, "bin/db.dump"} {
		if !strings.Contains(out, want) {
			t.Errorf("plugin logs lack %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{testSecretKey, wrongSecret} {
		if strings.Contains(out, secret) {
			t.Errorf("plugin logs contain a secret:\n%s", out)
		}
	}
}
