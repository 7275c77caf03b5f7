package sdktest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/sdk"
)

// DumperSuite configures RunDumperSuite.
type DumperSuite struct {
	// New returns a fresh, configured dumper.
	New func(t *testing.T) sdk.Dumper
	// Target is a reachable database with several MiB of data in it: the
	// cancellation case needs a dump longer than one 1 MiB chunk.
	Target sdk.Target
	// Unreachable is a target whose connection must fail validation.
	Unreachable sdk.Target
	// Restore, when set, receives each dump to restore and check; it is
	// called only for dumpers that implement sdk.Restorer.
	Restore func(t *testing.T, c *sdk.DumperClient, dump []byte)
}

// RunDumperSuite checks a dumper against the Dumper contract through the
// real gRPC shims.
func RunDumperSuite(t *testing.T, s DumperSuite) {
	t.Helper()
	client := func(t *testing.T) (*sdk.DumperClient, sdk.Dumper) {
		d := s.New(t)
		return DumperClient(t, d), d
	}
	t.Run("Info", func(t *testing.T) {
		c, d := client(t)
		info, err := c.Describe(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if info.Kind != sdk.KindDumper || info.Name == "" || info.Version == "" {
			t.Errorf("info = %+v: want kind dumper, a name and a version", info)
		}
		_, restorer := d.(sdk.Restorer)
		if restorer != info.Has(sdk.CapRestore) {
			t.Errorf("implements Restorer = %v but declares %q = %v", restorer, sdk.CapRestore, info.Has(sdk.CapRestore))
		}
	})
	t.Run("Validate", func(t *testing.T) {
		c, _ := client(t)
		if _, err := c.Validate(ctxT(t), s.Target); err != nil {
			t.Errorf("validate reachable target: %v", err)
		}
		if _, err := c.Validate(ctxT(t), s.Unreachable); err == nil {
			t.Error("validate unreachable target succeeded")
		}
	})
	t.Run("Dump", func(t *testing.T) {
		c, d := client(t)
		var buf bytes.Buffer
		res, err := c.Dump(ctxT(t), s.Target, &buf)
		if err != nil {
			t.Fatalf("dump: %v", err)
		}
		if buf.Len() == 0 || res.Bytes != int64(buf.Len()) {
			t.Fatalf("dump wrote %d bytes, result says %d", buf.Len(), res.Bytes)
		}
		if res.Extension == "" {
			t.Error("dump result has no file extension")
		}
		if _, ok := d.(sdk.Restorer); ok && s.Restore != nil {
			s.Restore(t, c, buf.Bytes())
		}
	})
	t.Run("DumpUnreachableFails", func(t *testing.T) {
		c, _ := client(t)
		if _, err := c.Dump(ctxT(t), s.Unreachable, io.Discard); err == nil {
			t.Error("dump of an unreachable target succeeded")
		}
	})
	t.Run("CancelStopsDump", func(t *testing.T) {
		c, _ := client(t)
		ctx, cancel := context.WithCancel(ctxT(t))
		start := time.Now()
		// Cancel as soon as the first bytes arrive.
		_, err := c.Dump(ctx, s.Target, writerFunc(func(p []byte) (int, error) {
			cancel()
			return len(p), nil
		}))
		if err == nil {
			t.Fatal("a dump cancelled mid-stream reported success")
		}
		if !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			t.Errorf("err = %v, want cancellation", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("cancelled dump took %v to stop", d)
		}
	})
	t.Run("FailingWriterStopsDump", func(t *testing.T) {
		c, _ := client(t)
		boom := errors.New("disk full")
		_, err := c.Dump(ctxT(t), s.Target, writerFunc(func([]byte) (int, error) { return 0, boom }))
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want the writer's error", err)
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
