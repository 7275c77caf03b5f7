package sqlite

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/labelbackup/label-backup/sdk"
)

// TestBinary builds label-backup-plugin-sqlite and drives it the way the
// agent does: "describe", then a separate process over go-plugin.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "label-backup-plugin-sqlite")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/label-backup-plugin-sqlite").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "describe").Output()
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	var info sdk.Info
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("describe output %s: %v", out, err)
	}
	if info.Name != "sqlite" || info.Kind != sdk.KindDumper || info.ProtocolVersion != sdk.ProtocolVersion || !info.Has(sdk.CapRestore) {
		t.Errorf("describe = %+v", info)
	}

	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake(),
		VersionedPlugins: sdk.ClientPlugins(),
		Cmd:              exec.Command(bin),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
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

	src := filepath.Join(t.TempDir(), "app.db")
	seed(t, src, 100).Close()
	var dump bytes.Buffer
	if _, err := d.Dump(ctx, conn(src), &dump); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "restored.db")
	if _, err := d.Restore(ctx, conn(dst), Format, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatal(err)
	}
	if digest(t, dst) != digest(t, src) {
		t.Error("restored tables differ")
	}
	if _, err := os.Stat(dst); err != nil {
		t.Error(err)
	}
}
