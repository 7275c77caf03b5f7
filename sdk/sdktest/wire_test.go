package sdktest

// Wire-level tests of the SDK's client and server shims. They live here, not
// in package sdk, because the in-process harness is in this package and
// this package imports sdk.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/sdk"
)

// funcDumper is a Dumper whose Dump is a function.
type funcDumper struct {
	info sdk.Info
	dump func(ctx context.Context, w io.Writer) (sdk.DumpResult, error)
}

func (d *funcDumper) Info() sdk.Info {
	if d.info.Name == "" {
		return sdk.Info{Name: "func", Version: "0", Kind: sdk.KindDumper, DefaultExtension: ".bin"}
	}
	return d.info
}

func (d *funcDumper) Validate(context.Context, sdk.Target) (sdk.ValidateResult, error) {
	return sdk.ValidateResult{}, nil
}

func (d *funcDumper) Dump(ctx context.Context, _ sdk.Target, w io.Writer) (sdk.DumpResult, error) {
	return d.dump(ctx, w)
}

// restoringDumper adds a Restore function to funcDumper.
type restoringDumper struct {
	funcDumper
	restore func(ctx context.Context, t sdk.Target, format string, r io.Reader) (sdk.RestoreResult, error)
}

func (d *restoringDumper) Restore(ctx context.Context, t sdk.Target, format string, r io.Reader) (sdk.RestoreResult, error) {
	return d.restore(ctx, t, format, r)
}

// putSink is a MemorySink whose Put is replaced.
type putSink struct {
	*MemorySink
	put func(ctx context.Context, req sdk.PutRequest, r io.Reader) (sdk.ObjectInfo, error)
}

func (s *putSink) Put(ctx context.Context, req sdk.PutRequest, r io.Reader) (sdk.ObjectInfo, error) {
	return s.put(ctx, req, r)
}

func wireCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWireDumpResults(t *testing.T) {
	boom := errors.New("pg_dump exited with status 1")
	cases := []struct {
		name      string
		dump      func(ctx context.Context, w io.Writer) (sdk.DumpResult, error)
		wantBytes int
		wantIs    []error
		wantMsg   string
	}{
		{
			name:    "nothing written",
			dump:    func(context.Context, io.Writer) (sdk.DumpResult, error) { return sdk.DumpResult{}, nil },
			wantIs:  []error{sdk.ErrEmptyDump},
			wantMsg: "dump: " + sdk.ErrEmptyDump.Error(),
		},
		{
			name: "empty writes only",
			dump: func(_ context.Context, w io.Writer) (sdk.DumpResult, error) {
				_, err := w.Write(nil)
				return sdk.DumpResult{}, err
			},
			wantIs: []error{sdk.ErrEmptyDump},
		},
		{
			name: "data then an error",
			dump: func(_ context.Context, w io.Writer) (sdk.DumpResult, error) {
				if _, err := w.Write(pattern(3*sdk.DefaultChunkSize+5, 1)); err != nil {
					return sdk.DumpResult{}, err
				}
				return sdk.DumpResult{}, fmt.Errorf("table users: %w", sdk.ErrPermission)
			},
			wantIs:  []error{sdk.ErrPermission},
			wantMsg: "dump: table users: " + sdk.ErrPermission.Error(),
		},
		{
			name: "a little data then a plain error",
			dump: func(_ context.Context, w io.Writer) (sdk.DumpResult, error) {
				_, _ = w.Write([]byte("partial"))
				return sdk.DumpResult{}, boom
			},
			wantMsg: "dump: " + boom.Error(),
		},
		{
			name: "success",
			dump: func(_ context.Context, w io.Writer) (sdk.DumpResult, error) {
				_, err := w.Write(pattern(2*sdk.DefaultChunkSize+3, 2))
				return sdk.DumpResult{Format: "custom", Warnings: []string{"w1"}}, err
			},
			wantBytes: 2*sdk.DefaultChunkSize + 3,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DumperClient(t, &funcDumper{dump: tc.dump})
			var buf bytes.Buffer
			res, err := c.Dump(wireCtx(t), sdk.Target{Connection: "x://"}, &buf)
			if tc.wantBytes > 0 {
				if err != nil {
					t.Fatalf("dump: %v", err)
				}
				if buf.Len() != tc.wantBytes || res.Bytes != int64(tc.wantBytes) {
					t.Errorf("received %d bytes, result %d, want %d", buf.Len(), res.Bytes, tc.wantBytes)
				}
				if !bytes.Equal(buf.Bytes(), pattern(tc.wantBytes, 2)) {
					t.Error("dump data corrupted on the wire")
				}
				if res.Format != "custom" || res.Extension != ".bin" || len(res.Warnings) != 1 {
					t.Errorf("result = %+v, want format, extension from Info and the warning", res)
				}
				return
			}
			if err == nil {
				t.Fatalf("dump succeeded with %d bytes, want a failure", buf.Len())
			}
			for _, want := range tc.wantIs {
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want errors.Is %v", err, want)
				}
			}
			if tc.wantMsg != "" && err.Error() != tc.wantMsg {
				t.Errorf("err = %q, want %q", err.Error(), tc.wantMsg)
			}
		})
	}
}

func TestWireDumpTrailerOverridesExtension(t *testing.T) {
	c := DumperClient(t, &funcDumper{dump: func(_ context.Context, w io.Writer) (sdk.DumpResult, error) {
		_, err := w.Write([]byte("SQL"))
		return sdk.DumpResult{Extension: ".sql", Format: "plain"}, err
	}})
	res, err := c.Dump(wireCtx(t), sdk.Target{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Extension != ".sql" || res.Format != "plain" || res.Bytes != 3 {
		t.Errorf("result = %+v, want the dumper's own extension and format", res)
	}
}

func TestWireDumpCancelReachesDumper(t *testing.T) {
	stopped := make(chan error, 1)
	c := DumperClient(t, &funcDumper{dump: func(ctx context.Context, w io.Writer) (sdk.DumpResult, error) {
		// Through a data socket the write itself fails once the host has
		// stopped reading; through messages it is buffered and the
		// context ends. Either way the dumper learns.
		if _, err := w.Write(pattern(sdk.DefaultChunkSize, 1)); err != nil {
			stopped <- err
			return sdk.DumpResult{}, err
		}
		<-ctx.Done()
		stopped <- ctx.Err()
		return sdk.DumpResult{}, ctx.Err()
	}})
	boom := errors.New("disk full")
	_, err := c.Dump(wireCtx(t), sdk.Target{}, writerFunc(func([]byte) (int, error) { return 0, boom }))
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want the writer's error", err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the dumper went on after the host's writer failed")
	}
}

// readSome reads n bytes (or everything when n < 0) and reports success
// without waiting for io.EOF.
func readSome(n int) func(context.Context, sdk.PutRequest, io.Reader) (sdk.ObjectInfo, error) {
	return func(_ context.Context, req sdk.PutRequest, r io.Reader) (sdk.ObjectInfo, error) {
		if n > 0 {
			if _, err := io.ReadFull(r, make([]byte, n)); err != nil {
				return sdk.ObjectInfo{}, err
			}
		}
		return sdk.ObjectInfo{Key: req.Key}, nil
	}
}

func TestWirePutWithoutReadingToEOF(t *testing.T) {
	cases := []struct {
		name     string
		dataSize int
		put      func(context.Context, sdk.PutRequest, io.Reader) (sdk.ObjectInfo, error)
	}{
		{"reads nothing, small upload", 100, readSome(0)},
		{"reads nothing, large upload", 5 * sdk.DefaultChunkSize, readSome(0)},
		{"reads every byte but not the trailer", 1000, readSome(1000)},
		{"reads every byte of a multi-chunk upload but not the trailer", 2*sdk.DefaultChunkSize + 1, readSome(2*sdk.DefaultChunkSize + 1)},
		{"reads half", 2 * sdk.DefaultChunkSize, readSome(sdk.DefaultChunkSize)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := SinkClient(t, &putSink{MemorySink: NewMemorySink(), put: tc.put})
			_, err := c.Put(wireCtx(t), sdk.PutRequest{Key: "k"}, bytes.NewReader(pattern(tc.dataSize, 1)))
			if !errors.Is(err, sdk.ErrIntegrity) {
				t.Errorf("err = %v, want ErrIntegrity", err)
			}
		})
	}
}

func TestWirePutSinkError(t *testing.T) {
	c := SinkClient(t, &putSink{MemorySink: NewMemorySink(), put: func(_ context.Context, req sdk.PutRequest, r io.Reader) (sdk.ObjectInfo, error) {
		_, _ = io.Copy(io.Discard, r)
		return sdk.ObjectInfo{}, fmt.Errorf("bucket full: %w", sdk.ErrNoSpace)
	}})
	_, err := c.Put(wireCtx(t), sdk.PutRequest{Key: "k"}, bytes.NewReader(pattern(3*sdk.DefaultChunkSize, 1)))
	if !errors.Is(err, sdk.ErrNoSpace) || !strings.Contains(err.Error(), "bucket full") {
		t.Errorf("err = %v, want the sink's ErrNoSpace with its message", err)
	}
}

func TestWirePutSinkReportsWrongSize(t *testing.T) {
	data := pattern(5000, 1)
	sum := sha256.Sum256(data)
	other := sha256.Sum256([]byte("x"))
	cases := []struct {
		name string
		obj  func(n int64) sdk.ObjectInfo
		ok   bool
	}{
		{"sink fills nothing in", func(int64) sdk.ObjectInfo { return sdk.ObjectInfo{} }, true},
		{"correct size and digest", func(n int64) sdk.ObjectInfo { return sdk.ObjectInfo{Size: n, SHA256: sum[:]} }, true},
		{"wrong size", func(n int64) sdk.ObjectInfo { return sdk.ObjectInfo{Size: n + 1} }, false},
		{"wrong digest", func(n int64) sdk.ObjectInfo { return sdk.ObjectInfo{Size: n, SHA256: other[:]} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := SinkClient(t, &putSink{MemorySink: NewMemorySink(), put: func(_ context.Context, _ sdk.PutRequest, r io.Reader) (sdk.ObjectInfo, error) {
				n, err := io.Copy(io.Discard, r)
				if err != nil {
					return sdk.ObjectInfo{}, err
				}
				return tc.obj(n), nil
			}})
			obj, err := c.Put(wireCtx(t), sdk.PutRequest{Key: "dir/k"}, bytes.NewReader(data))
			if tc.ok {
				if err != nil {
					t.Fatalf("put: %v", err)
				}
				if obj.Key != "dir/k" || obj.Size != int64(len(data)) || !bytes.Equal(obj.SHA256, sum[:]) {
					t.Errorf("object = %+v, want key, size and digest filled in", obj)
				}
				return
			}
			if !errors.Is(err, sdk.ErrIntegrity) {
				t.Errorf("err = %v, want ErrIntegrity", err)
			}
		})
	}
}

func TestWirePutWriterLifecycle(t *testing.T) {
	data := pattern(123456, 7)
	cases := []struct {
		name  string
		after func(t *testing.T, w *sdk.PutWriter)
	}{
		{"abort after commit is harmless", func(t *testing.T, w *sdk.PutWriter) {
			w.Abort()
			w.Abort()
		}},
		{"write after commit fails", func(t *testing.T, w *sdk.PutWriter) {
			n, err := w.Write([]byte("late"))
			if n != 0 || !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("Write after Commit = %d, %v; want 0 and ErrInvalidArgument", n, err)
			}
		}},
		{"second commit fails", func(t *testing.T, w *sdk.PutWriter) {
			if _, err := w.Commit(); !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("second Commit: err = %v, want ErrInvalidArgument", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := NewMemorySink()
			c := SinkClient(t, mem)
			w, err := c.OpenPut(wireCtx(t), sdk.PutRequest{Key: "a/b"})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			obj, err := w.Commit()
			if err != nil {
				t.Fatalf("commit: %v", err)
			}
			if obj.Size != int64(len(data)) {
				t.Errorf("size = %d, want %d", obj.Size, len(data))
			}
			tc.after(t, w)
			// The committed object is untouched by whatever came after.
			time.Sleep(50 * time.Millisecond)
			var got bytes.Buffer
			if err := c.Get(wireCtx(t), "a/b", &got); err != nil {
				t.Fatalf("get: %v", err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Errorf("stored %d bytes that differ from the %d committed", got.Len(), len(data))
			}
		})
	}
}

func TestWirePutWriterAbortLeavesNothing(t *testing.T) {
	mem := NewMemorySink()
	c := SinkClient(t, mem)
	w, err := c.OpenPut(wireCtx(t), sdk.PutRequest{Key: "a/b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pattern(2*sdk.DefaultChunkSize+1, 1)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if _, err := w.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Abort succeeded")
	}
	time.Sleep(100 * time.Millisecond)
	if keys := mem.Keys(); len(keys) != 0 {
		t.Errorf("aborted upload left %v", keys)
	}
}

func TestWirePutLargeSingleWrite(t *testing.T) {
	sizes := []int{5 << 20, 5<<20 + 1, sdk.DefaultChunkSize - 1}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			mem := NewMemorySink()
			c := SinkClient(t, mem)
			data := pattern(size, byte(size))
			w, err := c.OpenPut(wireCtx(t), sdk.PutRequest{Key: "big"})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			if n, err := w.Write(data); n != size || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			obj, err := w.Commit()
			if err != nil {
				t.Fatalf("commit: %v", err)
			}
			sum := sha256.Sum256(data)
			if obj.Size != int64(size) || !bytes.Equal(obj.SHA256, sum[:]) {
				t.Errorf("object = %d bytes %x, want %d %x", obj.Size, obj.SHA256, size, sum)
			}
			var got bytes.Buffer
			if err := c.Get(wireCtx(t), "big", &got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Errorf("got %d bytes that differ from the %d written", got.Len(), size)
			}
		})
	}
}

func TestWireRestore(t *testing.T) {
	type received struct {
		data   []byte
		format string
		target sdk.Target
	}
	cases := []struct {
		name     string
		size     int
		restore  func(r io.Reader) error // nil: dumper without Restorer
		wantIs   error
		wantData bool
	}{
		{
			name:     "reads everything",
			size:     3*sdk.DefaultChunkSize + 77,
			restore:  func(r io.Reader) error { return nil },
			wantData: true,
		},
		{
			name:     "small restore",
			size:     10,
			restore:  func(r io.Reader) error { return nil },
			wantData: true,
		},
		{
			// Like pg_restore stopping at the end of its archive: the SDK
			// reads the rest and checks the trailer itself.
			name: "returns early, rest checked by the SDK",
			size: 3 * sdk.DefaultChunkSize,
			restore: func(r io.Reader) error {
				_, err := io.ReadFull(r, make([]byte, 1000))
				return err
			},
			wantIs: nil,
		},
		{
			name:    "restorer fails",
			size:    100,
			restore: func(r io.Reader) error { return fmt.Errorf("role missing: %w", sdk.ErrPermission) },
			wantIs:  sdk.ErrPermission,
		},
		{
			name:   "no restorer",
			size:   100,
			wantIs: sdk.ErrUnsupported,
		},
		{
			name:   "no restorer, large",
			size:   3 * sdk.DefaultChunkSize,
			wantIs: sdk.ErrUnsupported,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got received
			base := funcDumper{dump: func(context.Context, io.Writer) (sdk.DumpResult, error) { return sdk.DumpResult{}, nil }}
			var d sdk.Dumper = &base
			if tc.restore != nil {
				d = &restoringDumper{funcDumper: base, restore: func(_ context.Context, tg sdk.Target, format string, r io.Reader) (sdk.RestoreResult, error) {
					wantAll := tc.wantData
					var data []byte
					var err error
					if wantAll {
						data, err = io.ReadAll(r)
						if err != nil {
							return sdk.RestoreResult{}, err
						}
					}
					if err := tc.restore(r); err != nil {
						return sdk.RestoreResult{}, err
					}
					mu.Lock()
					got = received{data: data, format: format, target: tg}
					mu.Unlock()
					return sdk.RestoreResult{Warnings: []string{"ok"}}, nil
				}}
			}
			c := DumperClient(t, d)
			data := pattern(tc.size, 9)
			target := sdk.Target{Connection: "pg://secret", Database: "app", Options: map[string]string{"a": "b"}, Container: sdk.ContainerRef{ID: "id1", Name: "db"}}
			res, err := c.Restore(wireCtx(t), target, "custom", bytes.NewReader(data))
			if !tc.wantData {
				if !errors.Is(err, tc.wantIs) {
					t.Errorf("err = %v, want %v", err, tc.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !bytes.Equal(got.data, data) {
				t.Errorf("restorer received %d bytes that differ from the %d sent", len(got.data), len(data))
			}
			if got.format != "custom" || got.target.Connection != target.Connection || got.target.Database != "app" ||
				got.target.Options["a"] != "b" || got.target.Container != target.Container {
				t.Errorf("restorer got format %q target %+v", got.format, got.target)
			}
			if len(res.Warnings) != 1 || res.Warnings[0] != "ok" {
				t.Errorf("warnings = %v", res.Warnings)
			}
		})
	}
}

func TestWireRestoreWriterLifecycle(t *testing.T) {
	var mu sync.Mutex
	var received []byte
	d := &restoringDumper{
		funcDumper: funcDumper{},
		restore: func(_ context.Context, _ sdk.Target, _ string, r io.Reader) (sdk.RestoreResult, error) {
			data, err := io.ReadAll(r)
			mu.Lock()
			received = data
			mu.Unlock()
			return sdk.RestoreResult{}, err
		},
	}
	c := DumperClient(t, d)
	w, err := c.OpenRestore(wireCtx(t), sdk.Target{}, "plain")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	data := pattern(sdk.DefaultChunkSize+5, 3)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	// Commit returned only after the restore finished.
	mu.Lock()
	if !bytes.Equal(received, data) {
		t.Errorf("restorer received %d bytes, want %d", len(received), len(data))
	}
	mu.Unlock()
	w.Abort()
	if _, err := w.Write([]byte("x")); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("Write after Commit: err = %v, want ErrInvalidArgument", err)
	}
}

// TestWireRestoreUnsupportedRace repeats a restore into a dumper that fails
// at once: the plugin may end the stream before the client's header is
// sent, and the client must still report the plugin's error, not io.EOF.
func TestWireRestoreUnsupportedRace(t *testing.T) {
	base := funcDumper{dump: func(context.Context, io.Writer) (sdk.DumpResult, error) { return sdk.DumpResult{}, nil }}
	c := DumperClient(t, &base)
	ctx := wireCtx(t)
	for i := range 300 {
		_, err := c.Restore(ctx, sdk.Target{}, "custom", strings.NewReader("x"))
		if !errors.Is(err, sdk.ErrUnsupported) {
			t.Fatalf("attempt %d: err = %v, want ErrUnsupported", i, err)
		}
	}
}
