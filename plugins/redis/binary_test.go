package redis

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
// a separate process over go-plugin. It checks the logs name the server
// but never a password.
func TestBinary(t *testing.T) {
	s := testServer(t)
	b := sdktest.StartBinary(t, "./cmd/label-backup-plugin-redis")
	info := b.Info
	if info.Name != "redis" || info.Version != Version || info.Kind != sdk.KindDumper || info.DefaultExtension != ".rdb" || len(info.Capabilities) != 0 {
		t.Errorf("describe: %+v", info)
	}
	d := b.Dumper(t)
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

	b.Stop()
	logText := b.Logs()
	for _, want := range []string{"dump starting", "dump finished", "connection validated", "127.0.0.1", `"user":"backup"`, "checksum_verified"} {
		if !strings.Contains(logText, want) {
			t.Errorf("plugin logs lack %q:\n%s", want, logText)
		}
	}
	assertNoSecret(t, logText, s.Password, s.BackupPW, wrongPW)
	b.AssertNoSecrets(t, s.Password, s.BackupPW, wrongPW)
}
