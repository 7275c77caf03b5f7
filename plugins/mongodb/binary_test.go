package mongodb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/mongodb/internal/fdbtest"
	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// TestBinary builds the plugin binary and drives it the way the host does:
// a separate process over go-plugin. It checks the logs name the hosts and
// database but never the password.
func TestBinary(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s)
	b := sdktest.StartBinary(t, "./cmd/label-backup-plugin-mongodb")
	if b.Info.Name != "mongodb" || b.Info.Kind != sdk.KindDumper || b.Info.Version != "0.1.0" ||
		!b.Info.Has(sdk.CapRestore) || b.Info.DefaultExtension != ".archive" {
		t.Fatalf("describe: %+v", b.Info)
	}
	d := b.Dumper(t)
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

	b.Stop()
	out := b.Logs()
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
