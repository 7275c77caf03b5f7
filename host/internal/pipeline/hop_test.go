package pipeline

import (
	"context"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/labelbackup/label-backup/host/internal/pluginmgr"
	"github.com/labelbackup/label-backup/sdk"
)

// BenchmarkHops measures each plugin hop alone: a dump into io.Discard, and
// a put of in-memory data into the local sink on tmpfs.
func BenchmarkHops(b *testing.B) {
	size := benchSize(b)
	bin := buildPlugins(b)
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr})
	plugins, err := pluginmgr.New(context.Background(), bin, logger)
	if err != nil {
		b.Fatal(err)
	}
	out, err := os.MkdirTemp("/dev/shm", "lb-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(out)
	b.Run("dump-discard", func(b *testing.B) {
		d, err := plugins.StartDumper(context.Background(), "synthetic")
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		b.SetBytes(size)
		for range b.N {
			if _, err := d.Dump(context.Background(), sdk.Target{Connection: "synthetic://?size=" + strconv.FormatInt(size, 10)}, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("put-only", func(b *testing.B) {
		s, err := plugins.StartSink(context.Background(), "local", map[string]string{"path": out})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		buf := make([]byte, 1<<20)
		b.SetBytes(size)
		for range b.N {
			w, err := s.OpenPut(context.Background(), sdk.PutRequest{Key: "x/y"})
			if err != nil {
				b.Fatal(err)
			}
			for n := int64(0); n < size; n += int64(len(buf)) {
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := w.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
