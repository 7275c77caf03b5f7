package redis

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"github.com/labelbackup/label-backup/sdk"
)

// RDB files start with "REDIS" and a 4-digit format version, and end with
// the EOF opcode 0xFF followed (from version 5 on) by the CRC-64 of
// everything before it, little-endian. A checksum of zero means the server
// runs with rdbchecksum no.
const (
	rdbMagic      = "REDIS"
	rdbHeaderLen  = 9 // "REDIS" + 4 digits
	rdbOpEOF      = 0xFF
	rdbTrailerLen = 9 // EOF opcode + CRC-64
	// rdbChecksumVersion is the first format version with a checksum.
	rdbChecksumVersion = 5
)

// crc64Jones is Redis's CRC-64: the "Jones" polynomial, reflected, with
// zero initial value and no final XOR (check value of "123456789":
// 0xe9c6d914c4b8d9ca). Because it is reflected with no final XOR, the CRC
// of a message followed by its own CRC in little-endian order is zero.
type crc64Jones struct{ tab [8][256]uint64 }

const jonesPoly = 0xad93d23594c935a9

var jones = newCRC64Jones()

func newCRC64Jones() *crc64Jones {
	c := &crc64Jones{}
	rev := bits.Reverse64(jonesPoly)
	for i := range 256 {
		crc := uint64(i)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ rev
			} else {
				crc >>= 1
			}
		}
		c.tab[0][i] = crc
	}
	// Slicing-by-8 tables: tab[k][i] is the CRC of byte i followed by k
	// zero bytes.
	for i := range 256 {
		crc := c.tab[0][i]
		for k := 1; k < 8; k++ {
			crc = c.tab[0][byte(crc)] ^ crc>>8
			c.tab[k][i] = crc
		}
	}
	return c
}

// update continues crc over p.
func (c *crc64Jones) update(crc uint64, p []byte) uint64 {
	for len(p) >= 8 {
		crc ^= binary.LittleEndian.Uint64(p)
		crc = c.tab[7][byte(crc)] ^ c.tab[6][byte(crc>>8)] ^ c.tab[5][byte(crc>>16)] ^ c.tab[4][byte(crc>>24)] ^
			c.tab[3][byte(crc>>32)] ^ c.tab[2][byte(crc>>40)] ^ c.tab[1][byte(crc>>48)] ^ c.tab[0][byte(crc>>56)]
		p = p[8:]
	}
	for _, b := range p {
		crc = c.tab[0][byte(crc)^b] ^ crc>>8
	}
	return crc
}

// rdbWriter passes an RDB payload through to w while checking it: the
// magic before the first byte goes out, then the size, end opcode and
// checksum once the payload is complete (finish).
type rdbWriter struct {
	w       io.Writer
	n       int64  // bytes received
	head    []byte // the first rdbHeaderLen bytes, held until complete
	tail    [rdbTrailerLen]byte
	crc     uint64 // CRC over every byte received, trailer included
	version int
	werr    error // the first error of w
}

func newRDBWriter(w io.Writer) *rdbWriter {
	return &rdbWriter{w: w, head: make([]byte, 0, rdbHeaderLen)}
}

func integrity(format string, args ...any) error {
	return fmt.Errorf("redis: "+format+": %w", append(args, sdk.ErrIntegrity)...)
}

// Write checks and forwards p. Errors of the underlying writer are
// returned unchanged (and remembered in werr).
func (r *rdbWriter) Write(p []byte) (int, error) {
	if r.werr != nil {
		return 0, r.werr
	}
	in := len(p)
	r.crc = jones.update(r.crc, p)
	r.keepTail(p)
	r.n += int64(in)
	if len(r.head) < rdbHeaderLen {
		k := min(rdbHeaderLen-len(r.head), len(p))
		r.head = append(r.head, p[:k]...)
		p = p[k:]
		if len(r.head) < rdbHeaderLen {
			return in, nil
		}
		if err := r.checkHeader(); err != nil {
			return 0, err
		}
		if _, err := r.w.Write(r.head); err != nil {
			r.werr = err
			return 0, err
		}
	}
	if len(p) > 0 {
		if _, err := r.w.Write(p); err != nil {
			r.werr = err
			return 0, err
		}
	}
	return in, nil
}

func (r *rdbWriter) keepTail(p []byte) {
	if len(p) >= rdbTrailerLen {
		copy(r.tail[:], p[len(p)-rdbTrailerLen:])
		return
	}
	copy(r.tail[:], r.tail[len(p):])
	copy(r.tail[rdbTrailerLen-len(p):], p)
}

func (r *rdbWriter) checkHeader() error {
	if string(r.head[:len(rdbMagic)]) != rdbMagic {
		return integrity("the payload is not an RDB file (it starts with %q, not %q)", r.head[:len(rdbMagic)], rdbMagic)
	}
	v := 0
	for _, c := range r.head[len(rdbMagic):] {
		if c < '0' || c > '9' {
			return integrity("the RDB header %q has no 4-digit version", r.head)
		}
		v = v*10 + int(c-'0')
	}
	r.version = v
	return nil
}

// finish checks a complete payload and reports whether its checksum was
// verified (false when the server writes none).
func (r *rdbWriter) finish() (checked bool, err error) {
	if len(r.head) < rdbHeaderLen {
		return false, integrity("the payload is %d bytes long: too short for an RDB file", r.n)
	}
	if r.version < rdbChecksumVersion {
		if r.tail[rdbTrailerLen-1] != rdbOpEOF {
			return false, integrity("the RDB file does not end with its EOF opcode")
		}
		return false, nil
	}
	if r.n < rdbHeaderLen+rdbTrailerLen {
		return false, integrity("the payload is %d bytes long: too short for an RDB file", r.n)
	}
	if r.tail[0] != rdbOpEOF {
		return false, integrity("the RDB file does not end with its EOF opcode and checksum (truncated?)")
	}
	if binary.LittleEndian.Uint64(r.tail[1:]) == 0 {
		return false, nil // rdbchecksum no
	}
	if r.crc != 0 {
		return false, integrity("the RDB file's CRC-64 does not match its content")
	}
	return true, nil
}
