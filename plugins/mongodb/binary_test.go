package mongodb

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

	"github.com/labelbackup/label-backup/plugins/mongodb/internal/fdbtest"
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
// a separate process over go-plugin. It checks the logs name the hosts and
// database but never the password.
func TestBinary(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s)
	bin := filepath.Join(t.TempDir(), "label-backup-plugin-mongodb")
	build := exec.Command("go", "build", "-o", bin, "./cmd/label-backup-plugin-mongodb")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	describe, err := exec.Command(bin, "describe").Output()
	if err != nil {
		t.Fatalf("describe: %v\n%s", err, describe)
	}
	for _, want := range []string{`"name": "mongodb"`, `"version": "0.1.0"`, `"kind": "dumper"`, `"restore"`, `"default_extension": ".archive"`} {
		if !strings.Contains(string(describe), want) {
			t.Errorf("describe lacks %s:\n%s", want, describe)
		}
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
	raw, err := rpc.Dispense(sdk.DispenseName(sdk.KindDumper))
	if err != nil {
		t.Fatal(err)
	}
	d := raw.(*sdk.DumperClient)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	db := uniqueDB(t, c, "bin")
	seedPeople(t, c, db)
	want := snapshot(t, c, db)
	target := sdk.Target{Connection: s.URI(db)}
	if _, err := d.Validate(ctx, target); err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	res, err := d.Dump(ctx, target, &dump)
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != Format || res.Extension != Extension || !bytes.HasPrefix(dump.Bytes(), wantMagic) || res.Bytes != int64(dump.Len()) {
		t.Errorf("result %+v, dump starts %x", res, dump.Bytes()[:min(8, dump.Len())])
	}
	const wrongPW = "Wr0ng-Passw0rd-Binary"
	_, err = d.Validate(ctx, sdk.Target{Connection: fmt.Sprintf("mongodb://root:%s@127.0.0.1:%d/%s?authSource=admin", wrongPW, s.Port, db)})
	if !errors.Is(err, sdk.ErrUnauthenticated) {
		t.Errorf("validate with a wrong password: %v", err)
	}
	dst := uniqueDB(t, c, "bin_dst")
	if _, err := d.Restore(ctx, sdk.Target{Connection: s.URI(""), Database: dst}, res.Format, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	assertSameContent(t, want, snapshot(t, c, dst))

	client.Kill()
	out := logs.String()
	for _, want := range []string{"dump starting", "dump finished", "restore finished", db, "127.0.0.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("plugin logs lack %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{s.Password, fdbtest.Escape(s.Password), wrongPW} {
		if strings.Contains(out, secret) {
			t.Errorf("plugin logs contain a password:\n%s", out)
		}
	}
}
