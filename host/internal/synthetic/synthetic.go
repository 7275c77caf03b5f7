// Package synthetic is a dumper plugin for benchmarks: it produces a stream
// of realistic, compressible text (SQL-like rows, about 3:1 under gzip -6)
// of a chosen size, as fast as memory allows, so the pipeline and not the
// source is what gets measured.
package synthetic

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"

	"github.com/labelbackup/label-backup/sdk"
)

// Dumper implements sdk.Dumper. The connection "synthetic://?size=N" sets
// the number of bytes to produce (default 1 GiB). For failure tests,
// crash_after=N makes the plugin process exit abruptly after N bytes, and
// stall_after=N makes the dump hang after N bytes until it is cancelled.
type Dumper struct {
	block []byte
}

// New builds the 8 MiB block the stream repeats. Repetition at that
// distance is invisible to gzip (32 KiB window) and to pgzip's 1 MiB
// blocks, so compression ratio and speed stay realistic.
func New() *Dumper {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"}
	block := make([]byte, 0, 8<<20+256)
	for id := 1; len(block) < 8<<20; id++ {
		block = strconv.AppendInt(block, int64(id), 10)
		block = append(block, '\t')
		block = append(block, words[rng.IntN(len(words))]...)
		block = append(block, ' ')
		block = append(block, words[rng.IntN(len(words))]...)
		block = append(block, '\t')
		block = strconv.AppendInt(block, rng.Int64N(1e9), 10)
		block = append(block, '\t')
		block = strconv.AppendFloat(block, rng.Float64()*1000, 'f', 2, 64)
		block = append(block, "\t2025-01-"...)
		block = strconv.AppendInt(block, int64(10+rng.IntN(18)), 10)
		block = append(block, '\n')
	}
	return &Dumper{block: block[:8<<20]}
}

// Info describes the plugin.
func (d *Dumper) Info() sdk.Info {
	return sdk.Info{Name: "synthetic", Version: "0.0.0", Kind: sdk.KindDumper, DefaultExtension: ".txt"}
}

// Validate always succeeds.
func (d *Dumper) Validate(context.Context, sdk.Target) (sdk.ValidateResult, error) {
	return sdk.ValidateResult{ServerVersion: "synthetic"}, nil
}

// Dump writes the stream in 256 KiB writes, like a pipe-fed dump tool.
func (d *Dumper) Dump(ctx context.Context, t sdk.Target, w io.Writer) (sdk.DumpResult, error) {
	size := int64(1 << 30)
	u, err := url.Parse(t.Connection)
	if err != nil {
		return sdk.DumpResult{}, fmt.Errorf("connection: %w", sdk.ErrInvalidArgument)
	}
	if s := u.Query().Get("size"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return sdk.DumpResult{}, fmt.Errorf("size %q: %w", s, sdk.ErrInvalidArgument)
		}
		size = n
	}
	crashAfter, err := optInt(u, "crash_after")
	if err != nil {
		return sdk.DumpResult{}, err
	}
	stallAfter, err := optInt(u, "stall_after")
	if err != nil {
		return sdk.DumpResult{}, err
	}
	const write = 256 << 10
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return sdk.DumpResult{}, err
		}
		if crashAfter > 0 && off >= crashAfter {
			os.Exit(3) // a plugin dying mid-stream, as a real crash would
		}
		if stallAfter > 0 && off >= stallAfter {
			<-ctx.Done()
			return sdk.DumpResult{}, ctx.Err()
		}
		start := off % int64(len(d.block))
		n := min(int64(write), size-off, int64(len(d.block))-start)
		if _, err := w.Write(d.block[start : start+n]); err != nil {
			return sdk.DumpResult{}, err
		}
		off += n
	}
	return sdk.DumpResult{Format: "synthetic", Extension: ".txt"}, nil
}

func optInt(u *url.URL, name string) (int64, error) {
	v := u.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: %w", name, v, sdk.ErrInvalidArgument)
	}
	return n, nil
}
