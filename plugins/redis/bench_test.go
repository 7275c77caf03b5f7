package redis

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/plugins/redis/internal/redistest"
	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// BenchmarkDump dumps ~200 MB of incompressible values (50000 keys of
// 4 KiB) with diskless transfer: through the plugin directly, through the
// in-process gRPC shims, and with redis-cli --rdb for comparison.
//
//	go test -run '^$' -bench Dump -benchtime 3x
func BenchmarkDump(b *testing.B) {
	const keys, size = 50000, 4 << 10
	srv := redistest.New(b, redistest.Options{Password: redistest.RandomPassword("bench-")})
	c, err := srv.Client()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rng := rand.New(rand.NewChaCha8([32]byte{7}))
	val := make([]byte, size)
	cmds := [][]string{{"CONFIG", "SET", "repl-diskless-sync-delay", "0"}}
	for i := range keys {
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		cmds = append(cmds, []string{"SET", "key:" + strconv.Itoa(i), string(val)})
		if len(cmds) == 1000 || i == keys-1 {
			if _, err := c.Pipeline(cmds); err != nil {
				b.Fatal(err)
			}
			cmds = cmds[:0]
		}
	}
	target := sdk.Target{Connection: "redis://:" + escape(srv.Password) + "@" + srv.Addr()}
	ctx := context.Background()
	var rdbSize int64
	{
		res, err := New().Dump(ctx, target, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		rdbSize = res.Bytes
	}

	b.Run("plugin", func(b *testing.B) {
		b.SetBytes(rdbSize)
		for b.Loop() {
			if _, err := New().Dump(ctx, target, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("grpc", func(b *testing.B) {
		client := sdktest.DumperClient(b, New())
		b.SetBytes(rdbSize)
		for b.Loop() {
			if _, err := client.Dump(ctx, target, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redis-cli", func(b *testing.B) {
		cli, err := redistest.FindBin("redis-cli")
		if err != nil {
			b.Fatal(err)
		}
		// --rdb /dev/null fails on fsync: write to a stdout that is
		// /dev/null itself (no pipe in between).
		devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer devNull.Close()
		b.SetBytes(rdbSize)
		for b.Loop() {
			cmd := exec.Command(cli, "-h", "127.0.0.1", "-p", strconv.Itoa(srv.Port), "--no-auth-warning", "--rdb", "-")
			cmd.Env = []string{"REDISCLI_AUTH=" + srv.Password}
			cmd.Stdout = devNull
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				b.Fatalf("redis-cli: %v\n%s", err, stderr.String())
			}
		}
	})
}
