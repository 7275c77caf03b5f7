package redis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/redis/internal/resp"
	"github.com/labelbackup/label-backup/sdk"
)

const testMark = "0123456789abcdef0123456789abcdef01234567"

// pipeSession is a session on one end of a net.Pipe, whose other end the
// returned function writes to, one Write per chunk: a net.Pipe never merges
// two writes into one read, so the chunks are exactly the boundaries the
// reader sees. After the chunks it closes the connection, goes on with the
// replication stream (as a master that keeps streaming would) or stays
// silent, until the test ends.
func pipeSession(t *testing.T, ctx context.Context) (*session, func(chunks [][]byte, then after)) {
	t.Helper()
	client, server := net.Pipe()
	ci := &connInfo{host: "fake", port: 1, password: "pipe-secret", hasAuth: true, secrets: []string{"pipe-secret"}}
	s := &session{ci: ci, conn: client, ctx: ctx, stop: context.AfterFunc(ctx, func() { client.Close() })}
	s.br = bufio.NewReaderSize(client, 64<<10)
	s.rd = resp.NewReader(s.br)
	done := make(chan struct{})
	t.Cleanup(func() {
		s.close()
		server.Close()
		<-done
	})
	return s, func(chunks [][]byte, then after) {
		go func() {
			defer close(done)
			for _, c := range chunks {
				if _, err := server.Write(c); err != nil {
					return
				}
			}
			switch then {
			case thenClose:
				server.Close()
			case thenStream:
				server.Write([]byte("*1\r\n$4\r\nPING\r\n"))
			}
		}()
	}
}

// after says what a fake master does after its chunks.
type after int

const (
	thenClose after = iota
	thenStream
	thenSilence
)

func closeOr(closeAfter bool) after {
	if closeAfter {
		return thenClose
	}
	return thenStream
}

// transfer reads a SYNC answer made of chunks the way Dump does.
func transfer(t *testing.T, ctx context.Context, chunks [][]byte, closeAfter bool, w io.Writer) (transferStats, error) {
	t.Helper()
	s, serve := pipeSession(t, ctx)
	serve(chunks, closeOr(closeAfter))
	size, mark, err := s.readSyncHeader()
	if err != nil {
		return transferStats{}, err
	}
	return s.readPayload(size, mark, w)
}

// testPayloads are RDBs whose bodies hold pieces of the end marker, so
// that a partial match just before the real marker (or straddling a read
// boundary) must not fool the scanner.
func testPayloads() map[string][]byte {
	return map[string][]byte{
		"tiny (shorter than the marker)": makeRDB("0010", nil),
		"partial markers inside": makeRDB("0011", []byte("\xfe\x00"+testMark[:39]+"x"+testMark[:1]+
			"\x00\x01k\x01v"+testMark[1:]+testMark[:20]+testMark[:39])),
		"ends with a marker prefix": makeRDB("0010", []byte(strings.Repeat("\x00k", 30)+testMark[:39])),
	}
}

func split2(stream []byte, i int) [][]byte { return [][]byte{stream[:i], stream[i:]} }

func TestTransferDisklessEveryBoundary(t *testing.T) {
	for name, payload := range testPayloads() {
		t.Run(name, func(t *testing.T) {
			stream := []byte("\n\n\n$EOF:" + testMark + "\r\n" + string(payload) + testMark)
			check := func(t *testing.T, chunks [][]byte, closeAfter bool) {
				t.Helper()
				var out bytes.Buffer
				st, err := transfer(t, context.Background(), chunks, closeAfter, &out)
				if err != nil {
					t.Fatalf("chunks %d: %v", chunkLens(chunks), err)
				}
				if !bytes.Equal(out.Bytes(), payload) {
					t.Fatalf("chunks %d: got %q\nwant %q", chunkLens(chunks), out.Bytes(), payload)
				}
				if !st.diskless || !st.checked || st.bytes != int64(len(payload)) {
					t.Fatalf("chunks %d: stats %+v", chunkLens(chunks), st)
				}
			}
			// Two pieces, split everywhere; the master keeps the
			// connection open after the marker, or closes it.
			for i := 1; i < len(stream); i++ {
				check(t, split2(stream, i), i%2 == 0)
			}
			// Three pieces, both cuts anywhere in the last 60 bytes,
			// where the payload's end and the marker are.
			from := max(1, len(stream)-60)
			for i := from; i < len(stream); i++ {
				for j := i + 1; j < len(stream); j++ {
					check(t, [][]byte{stream[:i], stream[i:j], stream[j:]}, false)
				}
			}
			// A byte at a time.
			var bytewise [][]byte
			for i := range stream {
				bytewise = append(bytewise, stream[i:i+1])
			}
			check(t, bytewise, true)
		})
	}
}

func TestTransferDiskEveryBoundary(t *testing.T) {
	for name, payload := range testPayloads() {
		t.Run(name, func(t *testing.T) {
			stream := []byte(fmt.Sprintf("\n\n$%d\r\n%s", len(payload), payload))
			for i := 1; i < len(stream); i++ {
				var out bytes.Buffer
				// The master keeps the connection open and goes on with
				// the replication stream: the length alone ends the read.
				st, err := transfer(t, context.Background(), split2(stream, i), false, &out)
				if err != nil {
					t.Fatalf("split at %d: %v", i, err)
				}
				if !bytes.Equal(out.Bytes(), payload) || st.diskless || !st.checked {
					t.Fatalf("split at %d: got %q (%+v)", i, out.Bytes(), st)
				}
			}
		})
	}
}

func TestTransferPSYNCAnswer(t *testing.T) {
	payload := makeRDB("0010", []byte("\xfe\x00"))
	for _, stream := range []string{
		"+FULLRESYNC 8de1787ba490483314a4d30f1c628bc5025eb761 0\r\n\n$EOF:" + testMark + "\r\n" + string(payload) + testMark,
		"+FULLRESYNC 8de1787ba490483314a4d30f1c628bc5025eb761 0\r\n" + fmt.Sprintf("$%d\r\n", len(payload)) + string(payload),
	} {
		var out bytes.Buffer
		if _, err := transfer(t, context.Background(), [][]byte{[]byte(stream)}, false, &out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), payload) {
			t.Errorf("got %q", out.Bytes())
		}
	}
}

func TestTransferFailures(t *testing.T) {
	good := makeRDB("0010", []byte("\xfe\x00\x00\x01k\x01v"))
	corrupt := bytes.Clone(good)
	corrupt[14] ^= 0xff
	tests := []struct {
		name    string
		stream  string
		want    error // a sentinel; nil: some error without one
		wantMsg string
	}{
		{"closed before the header", "\n\n", sdk.ErrUnavailable, "EOF"},
		{"error reply", "-NOPERM this user has no permissions to run the 'sync' command\r\n", sdk.ErrPermission, "NOPERM"},
		{"replica without master", "-NOMASTERLINK Can't SYNC while not connected with my master\r\n", sdk.ErrUnavailable, "NOMASTERLINK"},
		{"NOAUTH", "-NOAUTH Authentication required.\r\n", sdk.ErrUnauthenticated, "NOAUTH"},
		{"other error reply", "-ERR something else\r\n", nil, "something else"},
		{"error reply quoting the password", "-ERR unknown command 'SYNC', with args beginning with: 'pipe-secret'\r\n", nil, "***"},
		{"bad length", "$12x\r\n", sdk.ErrIntegrity, "length"},
		{"negative length", "$-1\r\n", sdk.ErrIntegrity, "length"},
		{"signed length", "$+18\r\n", sdk.ErrIntegrity, "length"},
		{"empty payload", "$0\r\n", sdk.ErrIntegrity, "too short"},
		{"short marker", "$EOF:abc\r\n", sdk.ErrIntegrity, "marker"},
		{"not a Redis answer", "HTTP/1.1 400 Bad Request\r\n", nil, "Redis server"},
		{"truncated payload", fmt.Sprintf("$%d\r\n%s", len(good)+10, good), sdk.ErrIntegrity, "closed the connection after"},
		{"no end marker", "$EOF:" + testMark + "\r\n" + string(good), sdk.ErrIntegrity, "before the end marker"},
		{"not an RDB", "$EOF:" + testMark + "\r\n" + "PGDMP" + strings.Repeat("x", 50) + testMark, sdk.ErrIntegrity, "not an RDB"},
		{"not an RDB (length form)", "$20\r\n" + strings.Repeat("y", 20), sdk.ErrIntegrity, "not an RDB"},
		{"corrupt payload", fmt.Sprintf("$%d\r\n%s", len(corrupt), corrupt), sdk.ErrIntegrity, "CRC-64"},
		{"cut before the checksum", "$EOF:" + testMark + "\r\n" + string(good[:len(good)-4]) + testMark, sdk.ErrIntegrity, "EOF opcode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := transfer(t, context.Background(), [][]byte{[]byte(tc.stream)}, true, io.Discard)
			if err == nil {
				t.Fatal("transfer succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %v", err, tc.want)
			}
			if tc.want == nil {
				for _, s := range []error{sdk.ErrUnauthenticated, sdk.ErrPermission, sdk.ErrUnavailable, sdk.ErrIntegrity} {
					if errors.Is(err, s) {
						t.Errorf("error %q wraps %v", err, s)
					}
				}
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "pipe-secret") {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestTransferWriterError(t *testing.T) {
	payload := makeRDB("0010", bytes.Repeat([]byte("x"), 1000))
	boom := errors.New("disk full")
	for _, stream := range []string{
		"$EOF:" + testMark + "\r\n" + string(payload) + testMark,
		fmt.Sprintf("$%d\r\n%s", len(payload), payload),
	} {
		_, err := transfer(t, context.Background(), [][]byte{[]byte(stream)}, false, writerFunc(func([]byte) (int, error) { return 0, boom }))
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want the writer's error", err)
		}
		if errors.Is(err, sdk.ErrIntegrity) || errors.Is(err, sdk.ErrUnavailable) {
			t.Errorf("the writer's error %v got a sentinel", err)
		}
	}
}

func TestTransferCancel(t *testing.T) {
	for _, header := range []string{"$EOF:" + testMark + "\r\n", "$100000000\r\n", "\n"} {
		ctx, cancel := context.WithCancel(context.Background())
		s, serve := pipeSession(t, ctx)
		// Part of a payload, then silence: the master is slow.
		serve([][]byte{[]byte(header), []byte("REDIS0010" + strings.Repeat("z", 100))}, thenSilence)
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		size, mark, err := s.readSyncHeader()
		if err == nil {
			_, err = s.readPayload(size, mark, io.Discard)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("header %q: err = %v, want context.Canceled", header, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("header %q: cancelled transfer took %v", header, d)
		}
	}
}

func chunkLens(chunks [][]byte) []int {
	var n []int
	for _, c := range chunks {
		n = append(n, len(c))
	}
	return n
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
