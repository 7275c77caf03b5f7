package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/redis/internal/redistest"
	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// Exec mode against the package's real server: the plugin runs behind the
// real gRPC shims and reaches the real redis-cli through the host's exec
// service over the broker (sdktest.LocalExec runs the "container's"
// commands as local processes).

// execClient is the plugin as the host sees it, and a context that offers
// it an executor.
func execClient(t *testing.T) (*sdk.DumperClient, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return sdktest.DumperClient(t, New()), sdk.WithExecHandler(ctx, &sdktest.LocalExec{})
}

func execModeTarget(conn string) sdk.Target {
	return sdk.Target{Connection: conn, Options: map[string]string{sdk.OptionMode: sdk.ModeExec},
		Container: sdk.ContainerRef{ID: "cafe", Name: "cache"}}
}

func TestExecValidateRedisCLI(t *testing.T) {
	s := testServer(t)
	freePort, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const wrongPW = "wr0ng-Passw0rd-XYZ"
	client, ctx := execClient(t)
	tests := []struct {
		name     string
		conn     string
		db       string
		wantErr  error // nil: success
		wantText string
	}{
		{name: "password only", conn: s.uri("", s.Password)},
		{name: "default user by name", conn: s.uri("default", s.Password)},
		{name: "ACL user", conn: s.uri("backup", s.BackupPW)},
		{name: "database override", conn: s.uri("", s.Password, "/0"), db: "15"},
		{name: "wrong password", conn: s.uri("", wrongPW), wantErr: sdk.ErrUnauthenticated, wantText: "WRONGPASS"},
		{name: "ACL user, another user's password", conn: s.uri("backup", s.Password), wantErr: sdk.ErrUnauthenticated, wantText: "WRONGPASS"},
		{name: "no password", conn: "redis://" + s.Addr(), wantErr: sdk.ErrUnauthenticated, wantText: "NOAUTH"},
		{name: "database out of range", conn: s.uri("", s.Password, "/16"), wantErr: sdk.ErrNotFound, wantText: "database 16 does not exist"},
		{name: "closed port", conn: fmt.Sprintf("redis://:%s@127.0.0.1:%d", escape(s.Password), freePort), wantErr: sdk.ErrUnavailable, wantText: "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := execModeTarget(tc.conn)
			target.Database = tc.db
			res, err := client.Validate(ctx, target)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if !strings.HasPrefix(res.ServerVersion, "7.") {
					t.Errorf("ServerVersion %q", res.ServerVersion)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.wantText)) {
				t.Errorf("err %q does not mention %q", err, tc.wantText)
			}
			assertNoSecret(t, err.Error(), s.Password, s.BackupPW, wrongPW)
		})
	}
}

// TestExecDumpRoundTrip dumps with redis-cli --rdb - in both transfer
// forms, checks each file with redis-check-rdb, loads it into a fresh
// server and compares every key.
func TestExecDumpRoundTrip(t *testing.T) {
	s := testServer(t)
	admin := s.client(t)
	client, ctx := execClient(t)
	for _, tc := range []struct {
		name     string
		diskless string
		conn     string
	}{
		{"diskless", "yes", s.uri("", s.Password)},
		{"disk", "no", s.uri("backup", s.BackupPW)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setConfig(t, admin, "repl-diskless-sync", tc.diskless)
			waitNoChild(t, admin)
			dir := t.TempDir()
			file := filepath.Join(dir, "backup.rdb")
			f, err := os.Create(file)
			if err != nil {
				t.Fatal(err)
			}
			res, err := client.Dump(ctx, execModeTarget(tc.conn), f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatalf("dump: %v", err)
			}
			fi, err := os.Stat(file)
			if err != nil || fi.Size() != res.Bytes || res.Bytes < bigValueSize || len(res.Warnings) != 0 {
				t.Fatalf("file: %v; result %+v", err, res)
			}
			if _, err := redistest.CheckRDB(file); err != nil {
				t.Fatal(err)
			}
			restored := redistest.New(t, redistest.Options{Dir: dir, Args: []string{"--dbfilename", "backup.rdb"}})
			compareServers(t, s.Server, restored)
		})
	}
}

// TestExecZeroConfig: no connection string, only what the host reports of
// the container: the password and port on redis-server's command line, or
// none at all, which the server refuses with a clear error.
func TestExecZeroConfig(t *testing.T) {
	s := testServer(t)
	client, ctx := execClient(t)
	port := strconv.Itoa(s.Port)
	target := execModeTarget("")
	target.ContainerCommand = []string{"docker-entrypoint.sh", "redis-server", "--port", port, "--requirepass", s.Password}
	res, err := client.Validate(ctx, target)
	if err != nil || !strings.HasPrefix(res.ServerVersion, "7.") {
		t.Fatalf("validate: %+v %v", res, err)
	}
	dump, err := client.Dump(ctx, target, io.Discard)
	if err != nil || dump.Bytes < bigValueSize {
		t.Fatalf("dump: %+v %v", dump, err)
	}

	target.ContainerCommand = []string{"redis-server", "--port", port}
	for _, call := range []func() error{
		func() error { _, err := client.Validate(ctx, target); return err },
		func() error { _, err := client.Dump(ctx, target, io.Discard); return err },
	} {
		err := call()
		if !errors.Is(err, sdk.ErrUnauthenticated) {
			t.Fatalf("err = %v, want ErrUnauthenticated", err)
		}
		for _, w := range []string{"no password is discoverable", "REDIS_PASSWORD", "--requirepass", "backup.conn", "NOAUTH"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("err = %q, want it to mention %q", err, w)
			}
		}
	}
}

// TestExecDumpCancel cancels a real exec-mode dump mid-stream: it returns
// promptly and the server stays healthy.
func TestExecDumpCancel(t *testing.T) {
	s := testServer(t)
	admin := s.client(t)
	setConfig(t, admin, "repl-diskless-sync", "yes")
	setConfig(t, admin, "rdb-key-save-delay", "100") // the dump takes seconds
	waitNoChild(t, admin)
	client, base := execClient(t)
	ctx, cancel := context.WithCancel(base)
	defer cancel()
	var cancelled time.Time
	var once sync.Once
	_, err := client.Dump(ctx, execModeTarget(s.uri("", s.Password)), writerFunc(func(p []byte) (int, error) {
		once.Do(func() { cancelled = time.Now(); cancel() })
		return len(p), nil
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if cancelled.IsZero() {
		t.Fatal("the dump wrote nothing before it was cancelled")
	}
	if d := time.Since(cancelled); d > 3*time.Second {
		t.Errorf("the dump took %v to stop after cancellation", d)
	}
	if r := mustDo(t, admin, "PING"); r.Str != "PONG" {
		t.Errorf("PING after the cancelled dump: %+v", r)
	}
}
