package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/redis/internal/redistest"
	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// TestConformance runs the SDK's dumper suite: the plugin behind the real
// gRPC shims, as the host sees it. The server holds several MiB, so the
// suite's mid-stream cancel lands before the end.
func TestConformance(t *testing.T) {
	s := testServer(t)
	freePort, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	sdktest.RunDumperSuite(t, sdktest.DumperSuite{
		New:         func(*testing.T) sdk.Dumper { return New() },
		Target:      sdk.Target{Connection: s.uri("backup", s.BackupPW)},
		Unreachable: sdk.Target{Connection: fmt.Sprintf("redis://:%s@127.0.0.1:%d", escape(s.Password), freePort)},
	})
}

// TestGRPCErrors checks that classified errors keep their sentinel and
// their password-free text across the plugin boundary, and that a dump
// arrives whole.
func TestGRPCErrors(t *testing.T) {
	s := testServer(t)
	client := sdktest.DumperClient(t, New())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	info, err := client.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != Name || info.Version != Version || info.DefaultExtension != Extension || info.Has(sdk.CapRestore) {
		t.Errorf("info %+v", info)
	}

	var dump bytes.Buffer
	res, err := client.Dump(ctx, sdk.Target{Connection: s.uri("", s.Password)}, &dump)
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != FormatRDB || res.Extension != Extension || res.Bytes != int64(dump.Len()) || !bytes.HasPrefix(dump.Bytes(), []byte("REDIS")) {
		t.Errorf("result %+v, %d bytes starting %q", res, dump.Len(), dump.Bytes()[:min(9, dump.Len())])
	}

	const wrongPW = "Wr0ng-Passw0rd-gRPC"
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"validate wrong password", func() error {
			_, err := client.Validate(ctx, sdk.Target{Connection: s.uri("", wrongPW)})
			return err
		}, sdk.ErrUnauthenticated},
		{"dump wrong password", func() error {
			_, err := client.Dump(ctx, sdk.Target{Connection: s.uri("backup", wrongPW)}, &bytes.Buffer{})
			return err
		}, sdk.ErrUnauthenticated},
		{"dump without replication rights", func() error {
			_, err := client.Dump(ctx, sdk.Target{Connection: s.uri("limited", s.LimitedPW)}, &bytes.Buffer{})
			return err
		}, sdk.ErrPermission},
		{"bad connection string", func() error {
			_, err := client.Validate(ctx, sdk.Target{Connection: "redis://" + s.Addr() + "?password=" + wrongPW})
			return err
		}, sdk.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v does not wrap %v", err, tc.want)
			}
			assertNoSecret(t, err.Error(), s.Password, s.LimitedPW, wrongPW)
			t.Logf("error: %v", err)
		})
	}
}
