package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
// a separate process over go-plugin. It checks the logs name host and
// database but never the password.
func TestBinary(t *testing.T) {
	c := testCluster(t)
	bin := filepath.Join(t.TempDir(), "label-backup-plugin-postgres")
	build := exec.Command("go", "build", "-o", bin, "./cmd/label-backup-plugin-postgres")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	describe, err := exec.Command(bin, "describe").Output()
	if err != nil || !strings.Contains(string(describe), `"name": "postgres"`) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Configure(ctx, map[string]string{"bin_dir": c.BinDir}); err != nil {
		t.Fatal(err)
	}
	db := seed(t, c, "bin")

	var dump bytes.Buffer
	res, err := d.Dump(ctx, sdk.Target{Connection: c.URI(db)}, &dump)
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != FormatCustom || res.Extension != Extension || !bytes.HasPrefix(dump.Bytes(), []byte("PGDMP")) {
		t.Errorf("result %+v, dump starts %q", res, dump.Bytes()[:min(8, dump.Len())])
	}
	const wrongPW = "Wr0ng-Passw0rd-Binary"
	_, err = d.Validate(ctx, sdk.Target{Connection: fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/%s", wrongPW, c.Port, db)})
	if !errors.Is(err, sdk.ErrUnauthenticated) {
		t.Errorf("validate with a wrong password: %v", err)
	}
	if err := d.Configure(ctx, map[string]string{"bin_dir": "relative"}); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("configure with a relative bin_dir: %v", err)
	}
	if _, err := d.Restore(ctx, sdk.Target{Connection: c.URI(uniqueDB(t, c, "bin_dst"))}, res.Format, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}

	client.Kill()
	out := logs.String()
	for _, want := range []string{"dump starting", "dump finished", "restore finished", db, "127.0.0.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("plugin logs lack %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{c.Password, escape(c.Password), wrongPW} {
		if strings.Contains(out, secret) {
			t.Errorf("plugin logs contain a password:\n%s", out)
		}
	}
}
