package compress

import (
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// segmentSize is how much input each zstd frame of a parallel stream
// holds: large enough that starting a new frame (and window) costs little
// ratio, small enough that a few in flight per core stay a few MiB.
const segmentSize = 2 << 20

// parallelZstd compresses a stream in segments on all workers at once,
// writing each segment as its own zstd frame, in order. A sequence of
// frames is a standard zstd stream ("zstd -d" and every decoder read it),
// and unlike one streaming encoder, which compresses one block at a time,
// it keeps every core busy.
type parallelZstd struct {
	enc *zstd.Encoder
	w   io.Writer

	cur   []byte
	jobs  chan *segment // to the workers
	order chan *segment // to the writer, in input order
	done  chan struct{} // closed when the writer has finished
	ins   sync.Pool     // input buffers
	outs  sync.Pool     // output buffers

	submitted bool

	mu     sync.Mutex
	err    error // first failure, sticky
	closed bool
}

type segment struct {
	in, out []byte
	ready   chan struct{}
}

func newParallelZstd(w io.Writer, workers int) (*parallelZstd, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(workers), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return nil, err
	}
	z := &parallelZstd{
		enc:   enc,
		w:     w,
		jobs:  make(chan *segment, workers),
		order: make(chan *segment, 2*workers), // bounds memory: ~2 segments a worker
		done:  make(chan struct{}),
	}
	for range workers {
		go z.work()
	}
	go z.write()
	return z, nil
}

func (z *parallelZstd) work() {
	for s := range z.jobs {
		out, _ := z.outs.Get().([]byte)
		s.out = z.enc.EncodeAll(s.in, out[:0])
		close(s.ready)
	}
}

// write writes finished segments in order; after a failure it only drains.
func (z *parallelZstd) write() {
	defer close(z.done)
	for s := range z.order {
		<-s.ready
		if z.failed() == nil {
			if _, err := z.w.Write(s.out); err != nil {
				z.fail(err)
			}
		}
		z.ins.Put(s.in[:0])
		z.outs.Put(s.out[:0])
	}
}

func (z *parallelZstd) failed() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.err
}

func (z *parallelZstd) fail(err error) {
	z.mu.Lock()
	if z.err == nil {
		z.err = err
	}
	z.mu.Unlock()
}

func (z *parallelZstd) Write(p []byte) (int, error) {
	if z.closed {
		return 0, errors.New("zstd: write after close")
	}
	written := 0
	for len(p) > 0 {
		if err := z.failed(); err != nil {
			return written, err
		}
		if z.cur == nil {
			if b, ok := z.ins.Get().([]byte); ok {
				z.cur = b
			} else {
				z.cur = make([]byte, 0, segmentSize)
			}
		}
		n := copy(z.cur[len(z.cur):cap(z.cur)], p)
		z.cur = z.cur[:len(z.cur)+n]
		p = p[n:]
		written += n
		if len(z.cur) == cap(z.cur) {
			z.submit()
		}
	}
	return written, nil
}

// submit hands the current segment to the workers and the writer.
func (z *parallelZstd) submit() {
	s := &segment{in: z.cur, ready: make(chan struct{})}
	z.cur = nil
	z.submitted = true
	z.order <- s // blocks while enough segments are in flight
	z.jobs <- s
}

// Close compresses what is left, waits for every frame to be written and
// returns the first error. It does not close the underlying writer.
func (z *parallelZstd) Close() error {
	if z.closed {
		return z.failed()
	}
	z.closed = true
	// An empty stream still gets one (empty) frame: a decoder needs one.
	if len(z.cur) > 0 || !z.submitted {
		if z.cur == nil {
			z.cur = []byte{}
		}
		z.submit()
	}
	close(z.jobs)
	close(z.order)
	<-z.done
	z.enc.Close()
	return z.failed()
}
