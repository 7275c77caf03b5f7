package compress

import (
	"bytes"
	"compress/gzip"
	"io"
	"os/exec"
	"strings"
	"testing"
)

func sample() []byte {
	var b bytes.Buffer
	for i := range 200000 {
		b.WriteString("row ")
		b.WriteString(strings.Repeat("x", i%17))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	data := sample()
	for _, algo := range []string{Gzip, Zstd, None} {
		t.Run(algo, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(algo, &buf)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if algo != None && buf.Len() >= len(data)/2 {
				t.Errorf("%s output %d bytes for %d input: not compressing", algo, buf.Len(), len(data))
			}
			r, err := NewReader(algo, &buf)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Error("round trip changed the data")
			}
		})
	}
}

// TestGzipIsStandard proves the parallel writer's output is plain gzip that
// the standard library and the gzip tool read.
func TestGzipIsStandard(t *testing.T) {
	data := sample()
	var buf bytes.Buffer
	w, _ := NewWriter(Gzip, &buf)
	w.Write(data)
	w.Close()
	zr, err := gzip.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("compress/gzip read %d bytes, err %v", len(got), err)
	}
	cmd := exec.Command("gzip", "-dc")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("gzip -dc: %d bytes, err %v", len(out), err)
	}
}

func TestUnknown(t *testing.T) {
	if _, err := NewWriter("lz4", io.Discard); err == nil {
		t.Error("unknown algorithm accepted")
	}
}
