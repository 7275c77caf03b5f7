package sdktest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

func TestMemorySinkConforms(t *testing.T) {
	RunSinkSuite(t, func(*testing.T) sdk.Sink { return NewMemorySink() })
}

func TestRandomDumperConforms(t *testing.T) {
	RunDumperSuite(t, DumperSuite{
		New:         func(*testing.T) sdk.Dumper { return &RandomDumper{Size: 5 << 20, Seed: 1} },
		Target:      sdk.Target{Connection: "random://"},
		Unreachable: sdk.Target{Connection: "random://unreachable"},
	})
}

func TestRandomDumperIsDeterministic(t *testing.T) {
	ctx := context.Background()
	a, _ := io.ReadAll((&RandomDumper{Size: 100000, Seed: 7}).Reader(ctx))
	b, _ := io.ReadAll((&RandomDumper{Size: 100000, Seed: 7}).Reader(ctx))
	c, _ := io.ReadAll((&RandomDumper{Size: 100000, Seed: 8}).Reader(ctx))
	if len(a) != 100000 || !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatalf("len %d, same seed equal %v, other seed equal %v", len(a), bytes.Equal(a, b), bytes.Equal(a, c))
	}
}

func TestRandomDumperFailure(t *testing.T) {
	boom := errors.New("boom")
	d := &RandomDumper{Size: 10 << 20, Seed: 1, FailAfter: 3 << 20, Err: boom}
	var n countWriter
	_, err := DumperClient(t, d).Dump(context.Background(), sdk.Target{}, &n)
	if err == nil || err.Error() != "dump: boom" {
		t.Fatalf("err = %v, want the dumper's error carried across", err)
	}
	if n > 3<<20 {
		t.Errorf("received %d bytes, more than the %d produced before the failure", n, 3<<20)
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
