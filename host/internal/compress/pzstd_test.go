package compress

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// textish is compressible input of n bytes that is not periodic.
func textish(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"INSERT", "INTO", "orders", "VALUES", "(", ")", ",", "'alice'", "'bob'", "42", "3.14", "NULL", "\n"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

// TestParallelZstdIsStandard: input of several segments, written in odd
// pieces, comes out as a standard zstd stream of several frames that the
// zstd tool and klauspost's reader both decode to the input; an empty
// stream is one valid empty frame.
func TestParallelZstdIsStandard(t *testing.T) {
	for _, size := range []int{0, 1, segmentSize - 1, segmentSize, 5*segmentSize + 12345} {
		data := textish(size)
		var buf bytes.Buffer
		w, err := newParallelZstd(&buf, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i, step := 0, 1; i < len(data); step = step*5%(1<<20) + 7 {
			n := min(step, len(data)-i)
			if k, err := w.Write(data[i : i+n]); err != nil || k != n {
				t.Fatalf("write: %d, %v", k, err)
			}
			i += n
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if size > segmentSize && buf.Len() > size/2 {
			t.Errorf("size %d: %d bytes out: not compressing", size, buf.Len())
		}
		zr, err := zstd.NewReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		zr.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: klauspost read %d bytes, %v", size, len(got), err)
		}
		cmd := exec.Command("zstd", "-d", "-c")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.Output()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("size %d: zstd -d: %d bytes, %v", size, len(out), err)
		}
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

// TestParallelZstdWriterFailure: a failing destination fails later writes
// and Close with its error, and nothing hangs.
func TestParallelZstdWriterFailure(t *testing.T) {
	w, err := newParallelZstd(&failingWriter{after: 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	data := textish(segmentSize)
	var werr error
	for range 20 {
		if _, werr = w.Write(data); werr != nil {
			break
		}
	}
	cerr := w.Close()
	if werr == nil && cerr == nil {
		t.Fatal("no error from a failing destination")
	}
	for _, err := range []error{werr, cerr} {
		if err != nil && err.Error() != "disk full" {
			t.Errorf("err = %v, want the destination's", err)
		}
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("write after close succeeded")
	}
}
