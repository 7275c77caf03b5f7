package resp

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestAppendCommand(t *testing.T) {
	got := string(AppendCommand(nil, "AUTH", "us er", "p\r\nw", ""))
	want := "*4\r\n$4\r\nAUTH\r\n$5\r\nus er\r\n$4\r\np\r\nw\r\n$0\r\n\r\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Reply
	}{
		{"simple string", "+OK\r\n", Reply{Type: SimpleString, Str: "OK"}},
		{"bare LF", "+PONG\n", Reply{Type: SimpleString, Str: "PONG"}},
		{"error", "-WRONGPASS invalid username-password pair\r\n", Reply{Type: ErrorReply, Str: "WRONGPASS invalid username-password pair"}},
		{"integer", ":-42\r\n", Reply{Type: Integer, Int: -42}},
		{"bulk", "$5\r\nhe\r\no\r\n", Reply{Type: BulkString, Str: "he\r\no"}},
		{"empty bulk", "$0\r\n\r\n", Reply{Type: BulkString, Str: ""}},
		{"null bulk", "$-1\r\n", Reply{Type: BulkString, Null: true}},
		{"null array", "*-1\r\n", Reply{Type: Array, Null: true}},
		{"empty array", "*0\r\n", Reply{Type: Array, Elems: []Reply{}}},
		{"nested array", "*3\r\n:1\r\n*2\r\n$1\r\na\r\n-ERR x\r\n$-1\r\n", Reply{Type: Array, Elems: []Reply{
			{Type: Integer, Int: 1},
			{Type: Array, Elems: []Reply{{Type: BulkString, Str: "a"}, {Type: ErrorReply, Str: "ERR x"}}},
			{Type: BulkString, Null: true},
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every reply must also decode when it arrives a byte at a time.
			for _, src := range []io.Reader{strings.NewReader(tc.in), &oneByteReader{s: tc.in}} {
				r := NewReader(bufio.NewReaderSize(src, 64))
				got, err := r.ReadReply()
				if err != nil {
					t.Fatalf("ReadReply: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
				if _, err := r.ReadReply(); !errors.Is(err, io.EOF) {
					t.Errorf("after the reply: %v, want io.EOF", err)
				}
			}
		})
	}
}

func TestReadReplyErrors(t *testing.T) {
	var protoErr *ProtocolError
	tests := []struct {
		name string
		in   string
		want func(error) bool
	}{
		{"empty line", "\r\n", func(err error) bool { return errors.As(err, &protoErr) }},
		{"unknown type", "!oops\r\n", func(err error) bool { return errors.As(err, &protoErr) }},
		{"bad integer", ":12a\r\n", func(err error) bool { return errors.As(err, &protoErr) }},
		{"empty length", "$\r\n", func(err error) bool { return errors.As(err, &protoErr) }},
		{"negative length", "$-2\r\n", func(err error) bool { return errors.As(err, &protoErr) }},
		{"bulk too long", "$999999999999\r\n", func(err error) bool { return errors.As(err, &protoErr) }},
		{"bulk without CRLF", "$2\r\nabcd", func(err error) bool { return errors.As(err, &protoErr) }},
		{"truncated bulk", "$10\r\nabc", func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"truncated line", "+OK", func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"truncated array", "*2\r\n:1\r\n", func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"array too long", "*99999999999\r\n", func(err error) bool { return errors.As(err, &protoErr) }},
		{"nested too deeply", strings.Repeat("*1\r\n", 40) + ":1\r\n", func(err error) bool { return errors.As(err, &protoErr) }},
		{"line too long", "+" + strings.Repeat("x", 100) + "\r\n", func(err error) bool { return errors.Is(err, ErrLineTooLong) }},
		{"nothing", "", func(err error) bool { return errors.Is(err, io.EOF) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bufio.NewReaderSize(strings.NewReader(tc.in), 32))
			r.MaxBulk = 1 << 20
			got, err := r.ReadReply()
			if err == nil || !tc.want(err) {
				t.Fatalf("ReadReply = %+v, %v", got, err)
			}
			if len(err.Error()) > 120 {
				t.Errorf("error text is long: %q", err)
			}
		})
	}
}

func TestErrorCode(t *testing.T) {
	for in, want := range map[string]string{
		"WRONGPASS invalid username-password pair": "WRONGPASS",
		"NOAUTH":    "NOAUTH",
		"":          "",
		"ERR x y z": "ERR",
	} {
		if got := (Reply{Type: ErrorReply, Str: in}).Code(); got != want {
			t.Errorf("Code(%q) = %q, want %q", in, got, want)
		}
	}
	if got := (Reply{Type: SimpleString, Str: "OK"}).Code(); got != "" {
		t.Errorf("Code of a status = %q", got)
	}
}

type oneByteReader struct {
	s string
	i int
}

func (r *oneByteReader) Read(p []byte) (int, error) {
	if r.i >= len(r.s) {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.s[r.i]
	r.i++
	return 1, nil
}
