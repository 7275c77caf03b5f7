package mongodb

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/plugins/mongodb/internal/fdbtest"
	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// TestConformance runs the SDK's dumper suite: the plugin behind the real
// gRPC shims, as the host sees it.
func TestConformance(t *testing.T) {
	s := testServer(t)
	c := testClient(t, s)
	// Several MiB, so a dump spans many 1 MiB chunks and the suite's
	// mid-stream cancel lands before the end.
	src := uniqueDB(t, c, "suite")
	seedBulk(t, c, src, 3000, 2000)
	seedOrders(t, c, src)
	want := snapshot(t, c, src)
	port, err := fdbtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	sdktest.RunDumperSuite(t, sdktest.DumperSuite{
		New:         func(*testing.T) sdk.Dumper { return New() },
		Target:      sdk.Target{Connection: s.URI("", "appName=lbtest"), Database: src},
		Unreachable: sdk.Target{Connection: fmt.Sprintf("mongodb://root:%s@127.0.0.1:%d/?serverSelectionTimeoutMS=1000", fdbtest.Escape(s.Password), port)},
		Restore: func(t *testing.T, client *sdk.DumperClient, dump []byte) {
			if len(dump) < 5<<20 {
				t.Errorf("dump of %d bytes: the suite needs several MiB", len(dump))
			}
			dst := uniqueDB(t, c, "suite_dst")
			if _, err := client.Restore(ctxT(t), sdk.Target{Connection: s.URI(""), Database: dst}, Format, bytes.NewReader(dump)); err != nil {
				t.Fatalf("restore over gRPC: %v", err)
			}
			assertSameContent(t, want, snapshot(t, c, dst))
		},
	})
}

// TestGRPCErrors checks that classified errors keep their sentinel and
// their (password-free) text across the plugin boundary.
func TestGRPCErrors(t *testing.T) {
	s := testServer(t)
	client := sdktest.DumperClient(t, New())
	const wrongPW = "Wr0ng-Passw0rd-gRPC"
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"validate wrong password", func() error {
			_, err := client.Validate(ctxT(t), sdk.Target{Connection: fmt.Sprintf("mongodb://root:%s@127.0.0.1:%d/?authSource=admin", wrongPW, s.Port)})
			return err
		}, sdk.ErrUnauthenticated},
		{"validate missing database", func() error {
			_, err := client.Validate(ctxT(t), sdk.Target{Connection: s.URI("no_such_db")})
			return err
		}, sdk.ErrNotFound},
		{"dump bad connection string", func() error {
			_, err := client.Dump(ctxT(t), sdk.Target{Connection: "mysql://root:" + wrongPW + "@db/x"}, &bytes.Buffer{})
			return err
		}, sdk.ErrInvalidArgument},
		{"restore not an archive", func() error {
			_, err := client.Restore(ctxT(t), sdk.Target{Connection: s.URI("")}, Format, strings.NewReader("PGDMP........"))
			return err
		}, sdk.ErrInvalidArgument},
		{"restore truncated archive", func() error {
			_, err := client.Restore(ctxT(t), sdk.Target{Connection: s.URI("")}, Format, bytes.NewReader(append(append([]byte(nil), wantMagic...), 0x10)))
			return err
		}, sdk.ErrIntegrity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v does not wrap %v", err, tc.want)
			}
			for _, secret := range []string{wrongPW, s.Password, fdbtest.Escape(s.Password)} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a password: %v", err)
				}
			}
			t.Logf("error: %v", err)
		})
	}
}
