package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/postgres/internal/pgtest"
	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// TestConformance runs the SDK's dumper suite: the plugin behind the real
// gRPC shims, as the host sees it.
func TestConformance(t *testing.T) {
	c := testCluster(t)
	// Big enough (several MiB) that a dump spans many 1 MiB chunks, so the
	// suite's mid-stream cancel lands before the end.
	src := seed(t, c, "suite")
	mustSQL(t, c, src, `CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 120000) g;`)
	want := tableDigests(t, c, src)
	freePort, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	sdktest.RunDumperSuite(t, sdktest.DumperSuite{
		New:         func(t *testing.T) sdk.Dumper { return newPlugin(t, c) },
		Target:      sdk.Target{Connection: c.URI("postgres", "application_name=lbtest"), Database: src},
		Unreachable: sdk.Target{Connection: fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/x", escape(c.Password), freePort)},
		Restore: func(t *testing.T, client *sdk.DumperClient, dump []byte) {
			dst := uniqueDB(t, c, "suite_dst")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := client.Restore(ctx, sdk.Target{Connection: c.URI(dst)}, FormatCustom, bytes.NewReader(dump)); err != nil {
				t.Fatalf("restore over gRPC: %v", err)
			}
			if got := tableDigests(t, c, dst); got != want {
				t.Errorf("data restored over gRPC differs\nsrc:\n%s\ndst:\n%s", want, got)
			}
		},
	})
}

// TestGRPCErrors checks that classified errors keep their sentinel and
// their (password-free) text across the plugin boundary.
func TestGRPCErrors(t *testing.T) {
	c := testCluster(t)
	client := sdktest.DumperClient(t, newPlugin(t, c))
	const wrongPW = "Wr0ng-Passw0rd-gRPC"
	tests := []struct {
		name    string
		call    func(ctx context.Context) error
		wantErr error
	}{
		{"validate wrong password", func(ctx context.Context) error {
			_, err := client.Validate(ctx, sdk.Target{Connection: fmt.Sprintf("postgresql://postgres:%s@127.0.0.1:%d/postgres", wrongPW, c.Port)})
			return err
		}, sdk.ErrUnauthenticated},
		{"validate missing database", func(ctx context.Context) error {
			_, err := client.Validate(ctx, sdk.Target{Connection: c.URI("no_such_db")})
			return err
		}, sdk.ErrNotFound},
		{"validate bad connection string", func(ctx context.Context) error {
			_, err := client.Validate(ctx, sdk.Target{Connection: "mysql://root:" + wrongPW + "@db/x"})
			return err
		}, sdk.ErrInvalidArgument},
		{"dump missing database", func(ctx context.Context) error {
			_, err := client.Dump(ctx, sdk.Target{Connection: c.URI("no_such_db")}, &bytes.Buffer{})
			return err
		}, sdk.ErrNotFound},
		{"restore unknown format", func(ctx context.Context) error {
			_, err := client.Restore(ctx, sdk.Target{Connection: c.URI("postgres")}, "tar", strings.NewReader("PGDMP"))
			return err
		}, sdk.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := tc.call(ctx)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v does not wrap %v", err, tc.wantErr)
			}
			assertNoSecret(t, err, c.Password, escape(c.Password), wrongPW)
			t.Logf("error: %v", err)
		})
	}
}
