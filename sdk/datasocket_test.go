package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	pb "github.com/labelbackup/label-backup/sdk/internal/gen/labelbackup/plugin/v1"
)

// recordingSink keeps what Put read, or fails as told.
type recordingSink struct {
	mu      sync.Mutex
	got     map[string][]byte
	failPut error
}

func (s *recordingSink) Info() Info                                 { return Info{Name: "rec", Kind: KindSink} }
func (s *recordingSink) CheckReady(context.Context) (string, error) { return "ok", nil }
func (s *recordingSink) Put(_ context.Context, req PutRequest, r io.Reader) (ObjectInfo, error) {
	if s.failPut != nil {
		return ObjectInfo{}, s.failPut
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return ObjectInfo{}, err
	}
	s.mu.Lock()
	s.got[req.Key] = b
	s.mu.Unlock()
	return ObjectInfo{Key: req.Key}, nil
}
func (s *recordingSink) Get(context.Context, string, io.Writer) error { return ErrUnsupported }
func (s *recordingSink) Stat(context.Context, string) (ObjectInfo, error) {
	return ObjectInfo{}, ErrUnsupported
}
func (s *recordingSink) Delete(context.Context, string) error { return ErrUnsupported }
func (s *recordingSink) List(context.Context, ListRequest) (ListPage, error) {
	return ListPage{}, ErrUnsupported
}

func connectSink(t *testing.T, s Sink) *SinkClient {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{sinkName: &SinkPlugin{Impl: s}})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(sinkName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(*SinkClient)
}

// writesDumper writes size bytes of a pattern in writes of odd sizes.
type writesDumper struct{ size int }

func (d writesDumper) Info() Info { return Info{Name: "writes", Kind: KindDumper} }
func (d writesDumper) Validate(context.Context, Target) (ValidateResult, error) {
	return ValidateResult{}, nil
}
func (d writesDumper) Dump(_ context.Context, _ Target, w io.Writer) (DumpResult, error) {
	data := testData(d.size, 9)
	for i, step := 0, 1; i < len(data); step = step*7%(3<<20) + 1 {
		n := min(step, len(data)-i)
		if _, err := w.Write(data[i : i+n]); err != nil {
			return DumpResult{}, err
		}
		i += n
	}
	return DumpResult{}, nil
}

// dataDirs lists the data socket directories in dir.
func dataDirs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "lb-data-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBothTransports: puts and dumps arrive whole through the data socket
// and through messages (what plugins built with an older SDK get), and
// the data socket is used exactly when the plugin offers it and leaves
// nothing behind.
func TestBothTransports(t *testing.T) {
	for _, socket := range []bool{true, false} {
		t.Run(fmt.Sprintf("socket=%v", socket), func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			ctx := context.Background()
			rs := &recordingSink{got: map[string][]byte{}}
			sc := connectSink(t, rs)
			sc.feat.disabled = !socket
			dc := connect(t, writesDumper{size: 5<<20 + 12345}, false)
			dc.feat.disabled = !socket

			for _, size := range []int{0, 1, 100000, 3<<20 + 7} {
				data := testData(size, 4)
				w, err := sc.OpenPut(ctx, PutRequest{Key: fmt.Sprintf("k%d", size)})
				if err != nil {
					t.Fatal(err)
				}
				if socket && len(dataDirs(t, tmp)) != 1 {
					t.Errorf("size %d: no data socket while the put is open", size)
				}
				for i := 0; i < len(data); i += 70000 {
					if _, err := w.Write(data[i:min(i+70000, len(data))]); err != nil {
						t.Fatal(err)
					}
				}
				obj, err := w.Commit()
				if err != nil || obj.Size != int64(size) {
					t.Fatalf("size %d: commit %+v, %v", size, obj, err)
				}
				if got := rs.got[fmt.Sprintf("k%d", size)]; !bytes.Equal(got, data) {
					t.Fatalf("size %d: sink got %d bytes that differ", size, len(got))
				}
			}
			var out bytes.Buffer
			res, err := dc.Dump(ctx, Target{}, &out)
			if err != nil || res.Bytes != 5<<20+12345 || !bytes.Equal(out.Bytes(), testData(5<<20+12345, 9)) {
				t.Fatalf("dump: %+v, %d bytes, %v", res, out.Len(), err)
			}
			if left := dataDirs(t, tmp); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// TestDataSocketSinkFailsEarly: a sink that fails before reading makes the
// host's writes fail with its error, never hang.
func TestDataSocketSinkFailsEarly(t *testing.T) {
	sc := connectSink(t, &recordingSink{failPut: fmt.Errorf("bucket is read-only: %w", ErrPermission)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := sc.OpenPut(ctx, PutRequest{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	var werr error
	for i := 0; i < 64 && werr == nil; i++ {
		_, werr = w.Write(make([]byte, 1<<20))
	}
	if werr == nil {
		_, werr = w.Commit()
	}
	if !errors.Is(werr, ErrPermission) || !strings.Contains(werr.Error(), "read-only") {
		t.Fatalf("err = %v, want the sink's error", werr)
	}
}

// TestDataSocketAbort: an aborted put never reaches the sink as complete.
func TestDataSocketAbort(t *testing.T) {
	rs := &recordingSink{got: map[string][]byte{}}
	sc := connectSink(t, rs)
	w, err := sc.OpenPut(context.Background(), PutRequest{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 3<<20)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	time.Sleep(200 * time.Millisecond)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if _, ok := rs.got["k"]; ok {
		t.Fatal("an aborted put was stored")
	}
}

// TestDataSocketToken: connections without the token are dropped; the
// plugin's gets through.
func TestDataSocketToken(t *testing.T) {
	d, err := listenData()
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if fi, err := os.Stat(d.dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v, %v", fi.Mode(), err)
	}
	w := d.wire()
	go func() {
		bad, err := net.Dial("unix", w.Path)
		if err == nil {
			bad.Write(bytes.Repeat([]byte{'x'}, tokenSize))
			defer bad.Close()
		}
		good, err := dialData(context.Background(), w)
		if err == nil {
			good.Write([]byte("hello"))
			good.Close()
		}
	}()
	c, err := d.accept(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	if string(got) != "hello" {
		t.Fatalf("accepted a connection that sent %q", got)
	}
	if _, err := os.Stat(w.Path); !os.IsNotExist(err) {
		t.Errorf("socket still there after accept: %v", err)
	}
	if _, err := dialData(context.Background(), &pb.DataSocket{Path: "relative", Token: w.Token}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("relative path: %v", err)
	}
}

// TestDataMessageOnSocketCallRejected: with a data socket, data may not
// also come as messages.
func TestDataMessageOnSocketCallRejected(t *testing.T) {
	msgs := []struct {
		data []byte
		tr   *pb.StreamTrailer
	}{{data: []byte("sneaky")}}
	i := 0
	next, stop := socketNext(strings.NewReader("real"), func() ([]byte, *pb.StreamTrailer, error) {
		m := msgs[i]
		i++
		return m.data, m.tr, nil
	})
	defer stop()
	r := newTrailerReader(uploadCheck, next)
	_, err := io.ReadAll(r)
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "data socket") {
		t.Fatalf("err = %v", err)
	}
}
