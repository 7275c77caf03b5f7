package s3

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/labelbackup/label-backup/sdk"
)

// syncBuffer collects the plugin's re-emitted log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBinary builds the plugin binary and drives it the way the host does:
// a separate process over go-plugin, at debug log level. Its logs name the
// bucket and keys but never a secret.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "label-backup-plugin-s3")
	build := exec.Command("go", "build", "-o", bin, "./cmd/label-backup-plugin-s3")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	describe, err := exec.Command(bin, "describe").Output()
	if err != nil || !strings.Contains(string(describe), `"name": "s3"`) || !strings.Contains(string(describe), `"kind": "sink"`) {
		t.Fatalf("describe: %v\n%s", err, describe)
	}

	logs := &syncBuffer{}
	cmd := exec.Command(bin)
	cmd.Env = []string{"LOG_LEVEL=debug"}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake(),
		VersionedPlugins: sdk.ClientPlugins(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  sdk.DialOptions(),
		Logger:           hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace, JSONFormat: true}),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(sdk.DispenseName(sdk.KindSink))
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*sdk.SinkClient)
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

	client.Kill()
	out := logs.String()
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
