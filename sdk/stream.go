package sdk

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"hash/crc32"
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

// readFrom reads r to its end straight into the chunk buffer (no
// intermediate copy), showing each piece read to observe before sending.
func (w *chunkWriter) readFrom(r io.Reader, observe func([]byte)) (int64, error) {
	var total int64
	for {
		if w.err != nil {
			return total, w.err
		}
		if w.buf == nil {
			w.buf = make([]byte, 0, w.size)
		}
		n, err := r.Read(w.buf[len(w.buf):cap(w.buf)])
		if n > 0 {
			observe(w.buf[len(w.buf) : len(w.buf)+n])
			w.buf = w.buf[:len(w.buf)+n]
			total += int64(n)
			if len(w.buf) == cap(w.buf) {
				if err := w.Flush(); err != nil {
					return total, err
				}
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
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
	next func() (data []byte, trailer *pb.StreamTrailer, err error)
	// crc selects the CRC32C check the sender announced; else sum (sha256)
	// is checked.
	crc      bool
	crcSum   uint32
	sum      hash.Hash
	n        uint64
	pending  []byte
	err      error
	verified bool
	// digest is the sha256 of the data: computed here, or in CRC32C mode
	// the sender's, once the trailer is verified.
	digest []byte
}

// castagnoli is CRC-32C's table; hash/crc32 computes it with the CPU's
// CRC32 instruction where there is one (SSE4.2, ARMv8).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newTrailerReader(check pb.TrailerCheck, next func() ([]byte, *pb.StreamTrailer, error)) *trailerReader {
	r := &trailerReader{next: next, crc: check == pb.TrailerCheck_TRAILER_CHECK_CRC32C}
	if !r.crc {
		r.sum = sha256.New()
	}
	return r
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
		if r.crc {
			r.crcSum = crc32.Update(r.crcSum, castagnoli, data)
		} else {
			r.sum.Write(data)
		}
		r.n += uint64(len(data))
		r.pending = data
	}
}

func (r *trailerReader) check(tr *pb.StreamTrailer) error {
	if tr.GetSize() != r.n {
		return fmt.Errorf("trailer says %d bytes, received %d: %w", tr.GetSize(), r.n, ErrIntegrity)
	}
	if r.crc {
		if tr.Crc32C == nil {
			return fmt.Errorf("trailer lacks the CRC32C its header announced: %w", ErrIntegrity)
		}
		if tr.GetCrc32C() != r.crcSum {
			return fmt.Errorf("trailer CRC32C %08x does not match received data %08x: %w", tr.GetCrc32C(), r.crcSum, ErrIntegrity)
		}
		r.digest = tr.GetSha256()
	} else {
		got := r.sum.Sum(nil)
		if !bytes.Equal(got, tr.GetSha256()) {
			return fmt.Errorf("trailer sha256 %x does not match received data %x: %w", tr.GetSha256(), got, ErrIntegrity)
		}
		r.digest = got
	}
	r.verified = true
	return io.EOF
}

// upload is the sending side of a client stream: data chunks, then a trailer
// with size, sha256 and CRC32C. It is shared by sink puts and dumper
// restores, whose headers announce uploadCheck.
type upload struct {
	chunks  *chunkWriter
	sum     hash.Hash
	crc     uint32
	trailer func(*pb.StreamTrailer) error
	cancel  func()
	done    bool
}

// uploadCheck is what this SDK asks receivers to verify: the CRC32C, since
// the sender's sha256 is all the host records (see TrailerCheck).
const uploadCheck = pb.TrailerCheck_TRAILER_CHECK_CRC32C

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
	u.hash(p[:n])
	return n, err
}

// ReadFrom makes io.Copy into an upload read straight into its chunks.
func (u *upload) ReadFrom(r io.Reader) (int64, error) {
	if u.done {
		return 0, fmt.Errorf("write after commit or abort: %w", ErrInvalidArgument)
	}
	return u.chunks.readFrom(r, u.hash)
}

func (u *upload) hash(p []byte) {
	u.sum.Write(p)
	u.crc = crc32.Update(u.crc, castagnoli, p)
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
	crc := u.crc
	tr := &pb.StreamTrailer{Size: uint64(size), Sha256: digest, Crc32C: &crc}
	if err := u.trailer(tr); err != nil {
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
