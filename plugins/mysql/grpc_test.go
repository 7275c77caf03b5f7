package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/mysql/internal/mytest"
	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// TestConformance runs the SDK's dumper suite: the plugin behind the real
// gRPC shims, as the host sees it.
func TestConformance(t *testing.T) {
	s := testServer(t)
	// Big enough (several MiB) that a dump spans many 1 MiB chunks, so the
	// suite's mid-stream cancel lands before the end.
	src := seed(t, s, "suite")
	mustSQL(t, s, src, `CREATE TABLE bulk (id INT PRIMARY KEY, v VARCHAR(100)) DEFAULT CHARSET=utf8mb4;
INSERT INTO bulk SELECT seq, CONCAT(MD5(seq), MD5(seq * 7)) FROM seq_1_to_120000;`)
	bulkDigest := func(db string) string {
		return digests(t, s, db) + "\n" + mustSQL(t, s, db,
			"SET SESSION group_concat_max_len = 1073741824; SELECT COUNT(*), MD5(GROUP_CONCAT(v ORDER BY id)) FROM bulk")
	}
	want := bulkDigest(src)
	freePort, err := mytest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	sdktest.RunDumperSuite(t, sdktest.DumperSuite{
		New:         func(t *testing.T) sdk.Dumper { return newPlugin(t, s) },
		Target:      sdk.Target{Connection: s.URI("mysql", "ssl-mode=DISABLED"), Database: src},
		Unreachable: sdk.Target{Connection: fmt.Sprintf("mysql://app:x@127.0.0.1:%d/x", freePort)},
		Restore: func(t *testing.T, client *sdk.DumperClient, dump []byte) {
			if len(dump) < 8<<20 {
				t.Errorf("the suite's dump has %d bytes, want several MiB", len(dump))
			}
			dst := uniqueDB(t, s, "suite_dst")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, err := client.Restore(ctx, sdk.Target{Connection: s.URI(dst)}, Format, bytes.NewReader(dump)); err != nil {
				t.Fatalf("restore over gRPC: %v", err)
			}
			if got := bulkDigest(dst); got != want {
				t.Errorf("data restored over gRPC differs\nsrc:\n%s\ndst:\n%s", want, got)
			}
		},
	})
}

// TestGRPCErrors checks that classified errors keep their sentinel and
// their (password-free) text across the plugin boundary.
func TestGRPCErrors(t *testing.T) {
	s := testServer(t)
	client := sdktest.DumperClient(t, newPlugin(t, s))
	const wrongPW = "Wr0ng-Passw0rd-gRPC"
	tests := []struct {
		name    string
		call    func(ctx context.Context) error
		wantErr error
	}{
		{"validate wrong password", func(ctx context.Context) error {
			_, err := client.Validate(ctx, sdk.Target{Connection: s.URIFor(mytest.AppUser, wrongPW, "mysql")})
			return err
		}, sdk.ErrUnauthenticated},
		{"validate missing database", func(ctx context.Context) error {
			_, err := client.Validate(ctx, sdk.Target{Connection: s.URI("no_such_db")})
			return err
		}, sdk.ErrNotFound},
		{"validate bad connection string", func(ctx context.Context) error {
			_, err := client.Validate(ctx, sdk.Target{Connection: "postgresql://root:" + wrongPW + "@db/x"})
			return err
		}, sdk.ErrInvalidArgument},
		{"dump missing database", func(ctx context.Context) error {
			_, err := client.Dump(ctx, sdk.Target{Connection: s.URI("no_such_db")}, &bytes.Buffer{})
			return err
		}, sdk.ErrNotFound},
		{"restore unknown format", func(ctx context.Context) error {
			_, err := client.Restore(ctx, sdk.Target{Connection: s.URI("mysql")}, "tar", strings.NewReader("SELECT 1;"))
			return err
		}, sdk.ErrInvalidArgument},
		{"restore truncated dump", func(ctx context.Context) error {
			db := uniqueDB(t, s, "grpc_trunc")
			_, err := client.Restore(ctx, sdk.Target{Connection: s.URI(db)}, Format,
				strings.NewReader("-- MariaDB dump 10.19\n--\n-- Host: 127.0.0.1    Database: x\nCREATE TABLE t (id INT);\n"))
			return err
		}, sdk.ErrIntegrity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := tc.call(ctx)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v does not wrap %v", err, tc.wantErr)
			}
			assertNoSecret(t, err.Error(), append(secretsOf(s), wrongPW)...)
			t.Logf("error: %v", err)
		})
	}
}
