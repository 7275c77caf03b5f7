// Package resp is a minimal client side of RESP2, the Redis serialization
// protocol: it encodes commands as arrays of bulk strings and decodes the
// five reply types (simple string, error, integer, bulk string, array).
//
// It knows nothing of connections or secrets: callers own the socket, its
// deadlines and what error text may be shown.
package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Reply types, named after their first byte on the wire.
const (
	SimpleString = '+'
	ErrorReply   = '-'
	Integer      = ':'
	BulkString   = '$'
	Array        = '*'
)

// Limits on what a reply may make us allocate.
const (
	// DefaultMaxBulk bounds a bulk string (Redis's own proto-max-bulk-len
	// is 512 MiB; no reply this code reads comes near 64 MiB).
	DefaultMaxBulk = 64 << 20
	// maxArray bounds the elements of one array.
	maxArray = 1 << 24
	// maxDepth bounds the nesting of arrays.
	maxDepth = 16
)

// Reply is one decoded reply.
type Reply struct {
	// Type is one of SimpleString, ErrorReply, Integer, BulkString, Array.
	Type byte
	// Str is the text of a simple string, error or bulk string.
	Str string
	// Int is the value of an integer.
	Int int64
	// Null is set for the null bulk string ($-1) and null array (*-1).
	Null bool
	// Elems are an array's elements.
	Elems []Reply
}

// IsError reports whether the reply is an error reply.
func (r Reply) IsError() bool { return r.Type == ErrorReply }

// Code is the first word of an error reply ("WRONGPASS", "ERR", ...), or ""
// for other replies.
func (r Reply) Code() string {
	if r.Type != ErrorReply {
		return ""
	}
	return ErrorCode(r.Str)
}

// ErrorCode is the first word of an error reply's text.
func ErrorCode(msg string) string {
	if i := indexSpace(msg); i >= 0 {
		return msg[:i]
	}
	return msg
}

func indexSpace(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return i
		}
	}
	return -1
}

// ProtocolError reports bytes that are not valid RESP. Its text never
// quotes more than a few bytes of what was received.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "RESP protocol error: " + e.Msg }

// ErrLineTooLong is returned for a reply line longer than the reader's
// buffer.
var ErrLineTooLong = errors.New("RESP protocol error: reply line too long")

// AppendCommand appends args encoded as a RESP array of bulk strings to buf.
func AppendCommand(buf []byte, args ...string) []byte {
	buf = append(buf, '*')
	buf = strconv.AppendInt(buf, int64(len(args)), 10)
	buf = append(buf, '\r', '\n')
	for _, a := range args {
		buf = append(buf, '$')
		buf = strconv.AppendInt(buf, int64(len(a)), 10)
		buf = append(buf, '\r', '\n')
		buf = append(buf, a...)
		buf = append(buf, '\r', '\n')
	}
	return buf
}

// Reader decodes replies from a buffered stream.
type Reader struct {
	br *bufio.Reader
	// MaxBulk bounds a bulk string; 0 means DefaultMaxBulk.
	MaxBulk int64
}

// NewReader reads replies from br. Lines longer than br's buffer are
// rejected with ErrLineTooLong.
func NewReader(br *bufio.Reader) *Reader { return &Reader{br: br} }

// ReadReply reads one complete reply. Error replies are returned as replies
// (Type ErrorReply), not as Go errors: a Go error means the stream itself
// failed or is not RESP.
func (r *Reader) ReadReply() (Reply, error) { return r.read(0) }

func (r *Reader) read(depth int) (Reply, error) {
	line, err := ReadLine(r.br)
	if err != nil {
		return Reply{}, err
	}
	if len(line) == 0 {
		return Reply{}, &ProtocolError{Msg: "empty reply line"}
	}
	t, body := line[0], line[1:]
	switch t {
	case SimpleString, ErrorReply:
		return Reply{Type: t, Str: string(body)}, nil
	case Integer:
		n, err := parseInt(body)
		if err != nil {
			return Reply{}, err
		}
		return Reply{Type: Integer, Int: n}, nil
	case BulkString:
		n, err := parseInt(body)
		if err != nil {
			return Reply{}, err
		}
		if n == -1 {
			return Reply{Type: BulkString, Null: true}, nil
		}
		limit := r.MaxBulk
		if limit <= 0 {
			limit = DefaultMaxBulk
		}
		if n < 0 || n > limit {
			return Reply{}, &ProtocolError{Msg: fmt.Sprintf("bulk string length %d out of range (limit %d)", n, limit)}
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r.br, buf); err != nil {
			return Reply{}, unexpectedEOF(err)
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return Reply{}, &ProtocolError{Msg: "bulk string not terminated by CRLF"}
		}
		return Reply{Type: BulkString, Str: string(buf[:n])}, nil
	case Array:
		n, err := parseInt(body)
		if err != nil {
			return Reply{}, err
		}
		if n == -1 {
			return Reply{Type: Array, Null: true}, nil
		}
		if n < 0 || n > maxArray {
			return Reply{}, &ProtocolError{Msg: fmt.Sprintf("array length %d out of range", n)}
		}
		if depth >= maxDepth {
			return Reply{}, &ProtocolError{Msg: "arrays nested too deeply"}
		}
		elems := make([]Reply, 0, min(n, 1024))
		for range n {
			e, err := r.read(depth + 1)
			if err != nil {
				return Reply{}, unexpectedEOF(err)
			}
			elems = append(elems, e)
		}
		return Reply{Type: Array, Elems: elems}, nil
	default:
		return Reply{}, &ProtocolError{Msg: fmt.Sprintf("unknown reply type byte 0x%02x", t)}
	}
}

// ReadLine reads one CRLF-terminated line (a bare LF is accepted too) and
// returns it without its terminator. The slice is valid until the next read
// from br.
func ReadLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, ErrLineTooLong
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func parseInt(b []byte) (int64, error) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || len(b) == 0 {
		return 0, &ProtocolError{Msg: fmt.Sprintf("bad number %q", clip(b))}
	}
	return n, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// clip keeps error texts short.
func clip(b []byte) []byte {
	if len(b) > 24 {
		return append(bytes.Clone(b[:24]), "..."...)
	}
	return b
}
