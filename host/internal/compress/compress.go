// Package compress wraps a backup stream in the chosen compression. Gzip is
// parallel (klauspost/pgzip) but its output is standard gzip, so
// "gunzip -c" restores it; zstd is klauspost/compress in parallel frames,
// a standard zstd stream too ("zstd -d").
package compress

import (
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Algorithms.
const (
	Gzip = "gzip"
	Zstd = "zstd"
	None = "none"
)

// Extension is the file extension an algorithm adds.
func Extension(algo string) string {
	switch algo {
	case Gzip:
		return ".gz"
	case Zstd:
		return ".zst"
	}
	return ""
}

// ContentType is the MIME type of the compressed stream.
func ContentType(algo string) string {
	switch algo {
	case Gzip:
		return "application/gzip"
	case Zstd:
		return "application/zstd"
	}
	return "application/octet-stream"
}

// blockSize is pgzip's unit of parallel work: 1 MiB blocks compress as well
// as one stream within a fraction of a percent and keep memory bounded at
// about blockSize × 2 × workers.
const blockSize = 1 << 20

// NewWriter returns a writer that compresses into w. Close flushes it but
// does not close w.
func NewWriter(algo string, w io.Writer) (io.WriteCloser, error) {
	workers := runtime.GOMAXPROCS(0)
	switch algo {
	case Gzip:
		zw, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
		if err != nil {
			return nil, fmt.Errorf("gzip writer: %w", err)
		}
		if err := zw.SetConcurrency(blockSize, 2*workers); err != nil {
			return nil, fmt.Errorf("gzip writer: %w", err)
		}
		return zw, nil
	case Zstd:
		// zstd is the choice for speed: its fastest level costs half the CPU
		// of the default for ~5% larger files; parallel frames put every
		// core to work (a streaming encoder compresses one block at a time).
		zw, err := newParallelZstd(w, workers)
		if err != nil {
			return nil, fmt.Errorf("zstd writer: %w", err)
		}
		return zw, nil
	case None:
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", algo)
}

// NewReader returns a reader that decompresses r.
func NewReader(algo string, r io.Reader) (io.ReadCloser, error) {
	switch algo {
	case Gzip:
		zr, err := pgzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip reader: %w", err)
		}
		return zr, nil
	case Zstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("zstd reader: %w", err)
		}
		return zr.IOReadCloser(), nil
	case None:
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unknown compression %q", algo)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
