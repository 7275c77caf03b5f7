package sdk

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"

	pb "github.com/labelbackup/label-backup/sdk/internal/gen/labelbackup/plugin/v1"
)

// Chunking limits. Measured on the target machines: throughput is flat from
// 256 KiB to 3 MiB per message, so 1 MiB it is.
const (
	DefaultChunkSize = 1 << 20
	minChunkSize     = 64 << 10
	maxChunkSize     = 4 << 20
	// maxMessageSize is what a plugin's gRPC server accepts: the largest
	// chunk plus framing, with room to spare.
	maxMessageSize = 16 << 20
)

func chunkSize(suggested uint32) int {
	switch n := int(suggested); {
	case n == 0:
		return DefaultChunkSize
	case n < minChunkSize:
		return minChunkSize
	case n > maxChunkSize:
		return maxChunkSize
	default:
		return n
	}
}

// chunkWriter batches writes of any size into chunks of exactly size bytes
// (the last one shorter) and hands each to send, reusing one buffer.
//
// send must not keep the slice after it returns. gRPC's Send encodes the
// message into its own buffer before returning; the documented exception,
// stats handlers that read messages later, is never installed on plugin
// connections. Reusing the buffer spares allocating and zeroing 1 MiB per
// chunk on both sides of every hop.
type chunkWriter struct {
	send func([]byte) error
	size int
	buf  []byte
	n    int64
	err  error
}

func newChunkWriter(size int, send func([]byte) error) *chunkWriter {
	return &chunkWriter{send: send, size: size}
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		if len(w.buf) == 0 && len(p) >= w.size {
			// Aligned: send straight from p, no copy (see above: send does
			// not keep the slice).
			w.n += int64(w.size)
			if w.err = w.send(p[:w.size]); w.err != nil {
				return written, w.err
			}
			p = p[w.size:]
			written += w.size
			continue
		}
		if w.buf == nil {
			w.buf = make([]byte, 0, w.size)
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		written += k
		if len(w.buf) == cap(w.buf) {
			if err := w.Flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// Flush sends what is buffered.
func (w *chunkWriter) Flush() error {
	if w.err != nil || len(w.buf) == 0 {
		return w.err
	}
	b := w.buf
	w.buf = w.buf[:0]
	w.n += int64(len(b))
	w.err = w.send(b)
	return w.err
}

// trailerReader turns a client-streamed sequence of data messages ended by a
// StreamTrailer into an io.Reader that returns io.EOF only once the trailer
// matches the bytes delivered. A stream that breaks, ends without a trailer
// or carries a wrong trailer yields an error wrapping ErrIntegrity (or the
// stream's own error), never io.EOF: a receiver that commits on EOF alone
// can therefore never commit a truncated upload.
type trailerReader struct {
	// next returns the next message's data or trailer.
	next     func() (data []byte, trailer *pb.StreamTrailer, err error)
	sum      hash.Hash
	n        uint64
	pending  []byte
	err      error
	verified bool
}

func newTrailerReader(next func() ([]byte, *pb.StreamTrailer, error)) *trailerReader {
	return &trailerReader{next: next, sum: sha256.New()}
}

func (r *trailerReader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.fill()
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// WriteTo hands each received chunk to w without copying it first, so a
// sink doing io.Copy(file, r) writes straight from the message buffer. Like
// Read, it ends without error only after a matching trailer.
func (r *trailerReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.pending) > 0 {
			n, err := w.Write(r.pending)
			total += int64(n)
			r.pending = r.pending[n:]
			if err != nil {
				return total, err
			}
			continue
		}
		if r.err == io.EOF {
			return total, nil
		}
		if r.err != nil {
			return total, r.err
		}
		r.fill()
	}
}

// fill receives the next message into pending, or sets err.
func (r *trailerReader) fill() {
	data, tr, err := r.next()
	switch {
	case err == io.EOF:
		r.err = fmt.Errorf("stream ended without a trailer after %d bytes: %w", r.n, ErrIntegrity)
	case err != nil:
		r.err = fmt.Errorf("stream broken after %d bytes: %w", r.n, err)
	case tr != nil:
		r.err = r.check(tr)
	default:
		r.sum.Write(data)
		r.n += uint64(len(data))
		r.pending = data
	}
}

func (r *trailerReader) check(tr *pb.StreamTrailer) error {
	if tr.GetSize() != r.n {
		return fmt.Errorf("trailer says %d bytes, received %d: %w", tr.GetSize(), r.n, ErrIntegrity)
	}
	if got := r.sum.Sum(nil); !bytes.Equal(got, tr.GetSha256()) {
		return fmt.Errorf("trailer sha256 %x does not match received data %x: %w", tr.GetSha256(), got, ErrIntegrity)
	}
	r.verified = true
	return io.EOF
}

// upload is the sending side of a client stream: data chunks, then a trailer
// with size and sha256. It is shared by sink puts and dumper restores.
type upload struct {
	chunks  *chunkWriter
	sum     hash.Hash
	trailer func(*pb.StreamTrailer) error
	cancel  func()
	done    bool
}

func newUpload(send func([]byte) error, trailer func(*pb.StreamTrailer) error, cancel func()) *upload {
	return &upload{
		chunks:  newChunkWriter(DefaultChunkSize, send),
		sum:     sha256.New(),
		trailer: trailer,
		cancel:  cancel,
	}
}

func (u *upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, fmt.Errorf("write after commit or abort: %w", ErrInvalidArgument)
	}
	n, err := u.chunks.Write(p)
	u.sum.Write(p[:n])
	return n, err
}

// finish flushes and sends the trailer; it returns the size and digest sent.
func (u *upload) finish() (int64, []byte, error) {
	if u.done {
		return 0, nil, fmt.Errorf("commit after commit or abort: %w", ErrInvalidArgument)
	}
	u.done = true
	if err := u.chunks.Flush(); err != nil {
		return 0, nil, err
	}
	digest := u.sum.Sum(nil)
	size := u.chunks.n
	if err := u.trailer(&pb.StreamTrailer{Size: uint64(size), Sha256: digest}); err != nil {
		return 0, nil, err
	}
	return size, digest, nil
}

// abort cancels the stream's context. It never half-closes the stream: a
// receiver must never see a clean end of stream for a failed upload.
func (u *upload) abort() {
	u.done = true
	u.cancel()
}
