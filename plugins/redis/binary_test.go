package redis

import (
	"bytes"
	"context"
	"encoding/json"
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
// a separate process over go-plugin. It checks the logs name the server
// but never a password.
func TestBinary(t *testing.T) {
	s := testServer(t)
	bin := filepath.Join(t.TempDir(), "label-backup-plugin-redis")
	build := exec.Command("go", "build", "-o", bin, "./cmd/label-backup-plugin-redis")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	out, err := exec.Command(bin, "describe").Output()
	if err != nil {
		t.Fatalf("describe: %v\n%s", err, out)
	}
	var info sdk.Info
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("describe printed %s: %v", out, err)
	}
	if info.Name != "redis" || info.Version != Version || info.Kind != sdk.KindDumper || info.DefaultExtension != ".rdb" || len(info.Capabilities) != 0 {
		t.Errorf("describe: %+v", info)
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if _, err := d.Validate(ctx, sdk.Target{Connection: s.uri("backup", s.BackupPW)}); err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	res, err := d.Dump(ctx, sdk.Target{Connection: s.uri("backup", s.BackupPW)}, &dump)
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != FormatRDB || res.Extension != Extension || res.Bytes != int64(dump.Len()) || !bytes.HasPrefix(dump.Bytes(), []byte("REDIS0")) {
		t.Errorf("result %+v, dump starts %q", res, dump.Bytes()[:min(9, dump.Len())])
	}
	const wrongPW = "Wr0ng-Passw0rd-Binary"
	if _, err := d.Validate(ctx, sdk.Target{Connection: s.uri("", wrongPW)}); !errors.Is(err, sdk.ErrUnauthenticated) {
		t.Errorf("validate with a wrong password: %v", err)
	}
	if _, err := d.Dump(ctx, sdk.Target{Connection: s.uri("backup", wrongPW)}, &bytes.Buffer{}); !errors.Is(err, sdk.ErrUnauthenticated) {
		t.Errorf("dump with a wrong password: %v", err)
	}
	if _, err := d.Restore(ctx, sdk.Target{Connection: s.uri("", s.Password)}, FormatRDB, bytes.NewReader(dump.Bytes())); !errors.Is(err, sdk.ErrUnsupported) {
		t.Errorf("restore: %v, want ErrUnsupported", err)
	}

	client.Kill()
	logText := logs.String()
	for _, want := range []string{"dump starting", "dump finished", "connection validated", "127.0.0.1", `"user":"backup"`, "checksum_verified"} {
		if !strings.Contains(logText, want) {
			t.Errorf("plugin logs lack %q:\n%s", want, logText)
		}
	}
	assertNoSecret(t, logText, s.Password, s.BackupPW, wrongPW)
}
