package mysql

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

	"github.com/labelbackup/label-backup/plugins/mysql/internal/mytest"
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
// a separate process over go-plugin. It checks the logs name host and
// database but never the password.
func TestBinary(t *testing.T) {
	s := testServer(t)
	bin := filepath.Join(t.TempDir(), "label-backup-plugin-mysql")
	build := exec.Command("go", "build", "-o", bin, "./cmd/label-backup-plugin-mysql")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	describe, err := exec.Command(bin, "describe").Output()
	if err != nil || !strings.Contains(string(describe), `"name": "mysql"`) || !strings.Contains(string(describe), `"default_extension": ".sql"`) {
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
		Logger:           hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace, JSONFormat: true}),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(sdk.DispenseName(sdk.KindDumper))
	if err != nil {
		t.Fatal(err)
	}
	d := raw.(*sdk.DumperClient)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := d.Configure(ctx, map[string]string{"bin_dir": s.ClientBinDir}); err != nil {
		t.Fatal(err)
	}
	db := seed(t, s, "bin")

	if _, err := d.Validate(ctx, sdk.Target{Connection: s.URI(db)}); err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	res, err := d.Dump(ctx, sdk.Target{Connection: s.URI(db)}, &dump)
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != Format || res.Extension != Extension || !dumpCompleted(dump.Bytes()[max(0, dump.Len()-200):]) {
		t.Errorf("result %+v, dump ends %q", res, dump.Bytes()[max(0, dump.Len()-200):])
	}
	const wrongPW = "Wr0ng-Passw0rd-Binary"
	_, err = d.Validate(ctx, sdk.Target{Connection: s.URIFor(mytest.AppUser, wrongPW, db)})
	if !errors.Is(err, sdk.ErrUnauthenticated) {
		t.Errorf("validate with a wrong password: %v", err)
	}
	_, err = d.Dump(ctx, sdk.Target{Connection: s.URIFor(mytest.AppUser, wrongPW, db)}, &bytes.Buffer{})
	if !errors.Is(err, sdk.ErrUnauthenticated) {
		t.Errorf("dump with a wrong password: %v", err)
	}
	if err := d.Configure(ctx, map[string]string{"bin_dir": "relative"}); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("configure with a relative bin_dir: %v", err)
	}
	dst := uniqueDB(t, s, "bin_dst")
	if _, err := d.Restore(ctx, sdk.Target{Connection: s.URI(dst)}, res.Format, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got, want := digests(t, s, dst), digests(t, s, db); got != want {
		t.Errorf("restored data differs\nsrc:\n%s\ndst:\n%s", want, got)
	}

	client.Kill()
	out := logs.String()
	for _, want := range []string{"connection validated", "dump starting", "dump finished", "restore finished", db, dst, "127.0.0.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("plugin logs lack %q:\n%s", want, out)
		}
	}
	for _, secret := range append(secretsOf(s), wrongPW) {
		if strings.Contains(out, secret) {
			t.Errorf("plugin logs contain a password:\n%s", out)
		}
	}
}
