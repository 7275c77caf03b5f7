package sdk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"testing"
	"testing/iotest"

	pb "github.com/labelbackup/label-backup/sdk/internal/gen/labelbackup/plugin/v1"
)

func testData(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131+i/251) ^ seed
	}
	return b
}

func TestChunkSize(t *testing.T) {
	cases := []struct {
		in   uint32
		want int
	}{
		{0, DefaultChunkSize},
		{1, minChunkSize},
		{minChunkSize - 1, minChunkSize},
		{minChunkSize, minChunkSize},
		{minChunkSize + 1, minChunkSize + 1},
		{DefaultChunkSize, DefaultChunkSize},
		{3 << 20, 3 << 20},
		{maxChunkSize, maxChunkSize},
		{maxChunkSize + 1, maxChunkSize},
		{1 << 31, maxChunkSize},
		{^uint32(0), maxChunkSize},
	}
	for _, tc := range cases {
		t.Run(strconv.FormatUint(uint64(tc.in), 10), func(t *testing.T) {
			if got := chunkSize(tc.in); got != tc.want {
				t.Errorf("chunkSize(%d) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
	if maxChunkSize+1024 > maxMessageSize {
		t.Errorf("the largest chunk (%d) does not fit a message (%d)", maxChunkSize, maxMessageSize)
	}
}

// recorder collects the chunks a chunkWriter sends, keeping the very slices
// it was handed (as gRPC would, until the message is serialised).
type recorder struct {
	chunks [][]byte
	fail   map[int]error // chunk index -> error returned by send
}

// send keeps a copy, as gRPC does: it encodes the message before Send
// returns, and chunkWriter may reuse the slice afterwards.
func (r *recorder) send(b []byte) error {
	r.chunks = append(r.chunks, bytes.Clone(b))
	return r.fail[len(r.chunks)-1]
}

func (r *recorder) joined() []byte { return bytes.Join(r.chunks, nil) }

func TestChunkWriterSplits(t *testing.T) {
	const size = 1000
	ones := func(n int) []int {
		w := make([]int, n)
		for i := range w {
			w[i] = 1
		}
		return w
	}
	cases := []struct {
		name   string
		writes []int
	}{
		{"nothing", nil},
		{"one byte", []int{1}},
		{"many small writes", ones(2500)},
		{"uneven writes", []int{7, 993, 1, 999, 1000, 250, 250, 250, 251, 3, 4000, 12}},
		{"one huge write", []int{10*size + 123}},
		{"exactly one chunk", []int{size}},
		{"exact multiple in one write", []int{5 * size}},
		{"exact multiple in chunk-sized writes", []int{size, size, size}},
		{"exact multiple in odd writes", []int{300, 1700, 1000}},
		{"empty writes mixed in", []int{0, 500, 0, 0, 500, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			total := 0
			for _, n := range tc.writes {
				total += n
			}
			data := testData(total, 1)
			var rec recorder
			w := newChunkWriter(size, rec.send)
			off := 0
			for _, n := range tc.writes {
				k, err := w.Write(data[off : off+n])
				if err != nil || k != n {
					t.Fatalf("Write(%d bytes) = %d, %v", n, k, err)
				}
				off += n
			}
			full := total / size
			if len(rec.chunks) != full {
				t.Fatalf("before Flush: %d chunks sent, want %d full ones", len(rec.chunks), full)
			}
			if err := w.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			want := full
			if total%size != 0 {
				want++
			}
			if len(rec.chunks) != want {
				t.Fatalf("after Flush: %d chunks, want %d", len(rec.chunks), want)
			}
			for i, c := range rec.chunks {
				if i < full && len(c) != size {
					t.Errorf("chunk %d has %d bytes, want exactly %d", i, len(c), size)
				}
				if len(c) == 0 {
					t.Errorf("chunk %d is empty", i)
				}
			}
			if got := rec.joined(); !bytes.Equal(got, data) {
				t.Errorf("chunks join to %d bytes that differ from the %d written", len(got), total)
			}
			if w.n != int64(total) {
				t.Errorf("n = %d, want %d", w.n, total)
			}
			// A second Flush sends nothing more.
			if err := w.Flush(); err != nil || len(rec.chunks) != want {
				t.Errorf("second Flush: err %v, %d chunks, want nil and %d", err, len(rec.chunks), want)
			}
		})
	}
}

// TestChunkWriterSendsWhatWasWritten: each chunk holds, when sent, exactly
// the bytes written, even though callers reuse their buffers (as io.Copy
// does) and the writer reuses its own, or sends aligned writes uncopied.
func TestChunkWriterSendsWhatWasWritten(t *testing.T) {
	const size = 100
	cases := []struct {
		name   string
		writes []int
	}{
		{"small writes", []int{30, 30, 30, 30, 30, 30, 30}},
		{"one huge write", []int{550}},
		{"exact chunks", []int{100, 100, 100}},
		{"mixed", []int{100, 30, 170, 200, 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			w := newChunkWriter(size, rec.send)
			var want []byte
			src := make([]byte, 1000)
			for i, n := range tc.writes {
				copy(src, testData(n, byte(i+1)))
				want = append(want, src[:n]...)
				if _, err := w.Write(src[:n]); err != nil {
					t.Fatal(err)
				}
				for j := range src {
					src[j] = 0xEE
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := rec.joined(); !bytes.Equal(got, want) {
				t.Fatal("sent chunks differ from what was written")
			}
		})
	}
}

func TestChunkWriterSendError(t *testing.T) {
	boom := errors.New("stream broken")
	cases := []struct {
		name      string
		failAt    int   // index of the chunk whose send fails
		writes    []int // chunk size is 10
		wantN     []int // bytes reported by each Write
		wantFlush bool  // whether the failure shows only at Flush
	}{
		// Aligned chunks go out uncopied: a failed send wrote nothing.
		{"first chunk in a big write", 0, []int{35}, []int{0}, false},
		{"second chunk in a big write", 1, []int{35}, []int{10}, false},
		{"in small writes", 0, []int{6, 6, 6}, []int{6, 4, 0}, false},
		{"at Flush", 0, []int{5}, []int{5}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := recorder{fail: map[int]error{tc.failAt: boom}}
			w := newChunkWriter(10, rec.send)
			var firstErr error
			for i, n := range tc.writes {
				k, err := w.Write(testData(n, 0))
				if k != tc.wantN[i] {
					t.Errorf("write %d: n = %d, want %d", i, k, tc.wantN[i])
				}
				if err != nil && firstErr == nil {
					firstErr = err
				}
			}
			if tc.wantFlush {
				if firstErr != nil {
					t.Fatalf("Write failed early: %v", firstErr)
				}
				firstErr = w.Flush()
			}
			if !errors.Is(firstErr, boom) {
				t.Fatalf("err = %v, want the send error", firstErr)
			}
			sent := len(rec.chunks)
			// The error sticks: nothing more is sent.
			if k, err := w.Write([]byte("more")); k != 0 || !errors.Is(err, boom) {
				t.Errorf("Write after failure = %d, %v; want 0 and the send error", k, err)
			}
			if err := w.Flush(); !errors.Is(err, boom) {
				t.Errorf("Flush after failure = %v, want the send error", err)
			}
			if len(rec.chunks) != sent {
				t.Errorf("%d more chunks sent after the failure", len(rec.chunks)-sent)
			}
		})
	}
}

// fakeStream feeds a trailerReader from a script of messages.
type fakeStream struct {
	msgs []streamMsg
	i    int
}

type streamMsg struct {
	data    []byte
	trailer *pb.StreamTrailer
	err     error
}

func (s *fakeStream) next() ([]byte, *pb.StreamTrailer, error) {
	if s.i >= len(s.msgs) {
		return nil, nil, io.EOF
	}
	m := s.msgs[s.i]
	s.i++
	return m.data, m.trailer, m.err
}

// dataMsgs splits data into messages of the given sizes (the rest in one
// last message) and appends tail.
func dataMsgs(data []byte, sizes []int, tail ...streamMsg) []streamMsg {
	var out []streamMsg
	for _, n := range sizes {
		n = min(n, len(data))
		out = append(out, streamMsg{data: data[:n]})
		data = data[n:]
	}
	if len(data) > 0 {
		out = append(out, streamMsg{data: data})
	}
	return append(out, tail...)
}

func trailerFor(data []byte) *pb.StreamTrailer {
	sum := sha256.Sum256(data)
	crc := crc32.Checksum(data, castagnoli)
	return &pb.StreamTrailer{Size: uint64(len(data)), Sha256: sum[:], Crc32C: &crc}
}

// trailerChecks are the checks a receiver may be asked for.
var trailerChecks = []pb.TrailerCheck{pb.TrailerCheck_TRAILER_CHECK_UNSPECIFIED, pb.TrailerCheck_TRAILER_CHECK_SHA256, pb.TrailerCheck_TRAILER_CHECK_CRC32C}

func isCRC(c pb.TrailerCheck) bool { return c == pb.TrailerCheck_TRAILER_CHECK_CRC32C }

func TestTrailerReaderAcceptsMatchingTrailer(t *testing.T) {
	data := testData(100000, 3)
	cases := []struct {
		name    string
		data    []byte
		sizes   []int
		readBuf int
	}{
		{"empty upload", nil, nil, 512},
		{"one message", data, nil, 32 << 10},
		{"many messages, big reads", data, []int{1, 9999, 0, 40000, 5}, 64 << 10},
		{"tiny reads", data, []int{3000, 3000, 3000}, 7},
		{"one-byte reads", data[:5000], []int{1000, 1000}, 1},
		{"empty data messages", data[:300], []int{0, 100, 0, 0, 100}, 64},
	}
	for _, tc := range cases {
		for _, check := range trailerChecks {
			t.Run(tc.name+"/"+check.String(), func(t *testing.T) {
				s := &fakeStream{msgs: dataMsgs(tc.data, tc.sizes, streamMsg{trailer: trailerFor(tc.data)})}
				r := newTrailerReader(check, s.next)
				var got []byte
				buf := make([]byte, tc.readBuf)
				var err error
				for range 10_000_000 {
					var n int
					n, err = r.Read(buf)
					if n > len(buf) {
						t.Fatalf("Read returned %d > len(p) %d", n, len(buf))
					}
					got = append(got, buf[:n]...)
					if err != nil {
						break
					}
				}
				if err != io.EOF {
					t.Fatalf("err = %v, want io.EOF", err)
				}
				if !bytes.Equal(got, tc.data) {
					t.Fatalf("read %d bytes that differ from the %d sent", len(got), len(tc.data))
				}
				if !r.verified {
					t.Error("verified is false after a matching trailer")
				}
				// EOF is sticky and the stream is not read past the trailer.
				consumed := s.i
				if n, err := r.Read(buf); n != 0 || err != io.EOF {
					t.Errorf("Read after EOF = %d, %v", n, err)
				}
				if s.i != consumed {
					t.Error("reader asked for more messages after the trailer")
				}
				if sum := sha256.Sum256(tc.data); !bytes.Equal(r.digest, sum[:]) {
					t.Errorf("digest = %x, want the data's sha256", r.digest)
				}
			})
		}
	}
}

func TestTrailerReaderRejects(t *testing.T) {
	data := testData(5000, 4)
	good := trailerFor(data)
	otherSum := sha256.Sum256([]byte("other"))
	broken := errors.New("connection reset")
	otherCRC := crc32.Checksum([]byte("other"), castagnoli)
	withCRC := func(tr *pb.StreamTrailer, crc *uint32) *pb.StreamTrailer { tr.Crc32C = crc; return tr }
	cases := []struct {
		name    string
		msgs    []streamMsg
		wantErr error
		// only, when set, limits the case to SHA256 ("sha") or CRC32C
		// ("crc") receivers.
		only string
	}{
		{"wrong crc32c", dataMsgs(data, []int{1000}, streamMsg{trailer: withCRC(&pb.StreamTrailer{Size: good.Size, Sha256: good.Sha256}, &otherCRC)}), ErrIntegrity, "crc"},
		{"missing crc32c", dataMsgs(data, []int{1000}, streamMsg{trailer: &pb.StreamTrailer{Size: good.Size, Sha256: good.Sha256}}), ErrIntegrity, "crc"},
		{"size too large", dataMsgs(data, []int{1000}, streamMsg{trailer: &pb.StreamTrailer{Size: good.Size + 1, Sha256: good.Sha256}}), ErrIntegrity, ""},
		{"size too small", dataMsgs(data, []int{1000}, streamMsg{trailer: &pb.StreamTrailer{Size: good.Size - 1, Sha256: good.Sha256}}), ErrIntegrity, ""},
		{"wrong sha256", dataMsgs(data, []int{1000}, streamMsg{trailer: withCRC(&pb.StreamTrailer{Size: good.Size, Sha256: otherSum[:]}, good.Crc32C)}), ErrIntegrity, "sha"},
		{"missing sha256", dataMsgs(data, nil, streamMsg{trailer: withCRC(&pb.StreamTrailer{Size: good.Size}, good.Crc32C)}), ErrIntegrity, "sha"},
		{"empty trailer on data", dataMsgs(data, nil, streamMsg{trailer: &pb.StreamTrailer{}}), ErrIntegrity, ""},
		{"truncated data", dataMsgs(data[:4000], nil, streamMsg{trailer: good}), ErrIntegrity, ""},
		{"corrupted data", dataMsgs(append(bytes.Clone(data[:4999]), data[4999]^1), nil, streamMsg{trailer: good}), ErrIntegrity, ""},
		{"EOF without trailer", dataMsgs(data, []int{2500}), ErrIntegrity, ""},
		{"EOF without anything", nil, ErrIntegrity, ""},
		{"stream error", dataMsgs(data, []int{2500}, streamMsg{err: broken}), broken, ""},
		{"stream error first", []streamMsg{{err: broken}}, broken, ""},
	}
	for _, tc := range cases {
		for _, check := range trailerChecks {
			if (tc.only == "crc" && !isCRC(check)) || (tc.only == "sha" && isCRC(check)) {
				continue
			}
			t.Run(tc.name+"/"+check.String(), func(t *testing.T) {
				for _, bufSize := range []int{1, 100, 1 << 20} {
					t.Run(fmt.Sprint(bufSize), func(t *testing.T) {
						s := &fakeStream{msgs: tc.msgs}
						r := newTrailerReader(check, s.next)
						buf := make([]byte, bufSize)
						var err error
						for range 1_000_000 {
							if _, err = r.Read(buf); err != nil {
								break
							}
						}
						if err == io.EOF || err == nil {
							t.Fatalf("err = %v, want a failure", err)
						}
						if errors.Is(err, io.EOF) {
							t.Errorf("err = %v wraps io.EOF: a receiver could mistake it for the end", err)
						}
						if !errors.Is(err, tc.wantErr) {
							t.Errorf("err = %v, want it to wrap %v", err, tc.wantErr)
						}
						if r.verified {
							t.Error("verified is true after a bad stream")
						}
						// The failure sticks.
						if _, err2 := r.Read(buf); err2 == io.EOF || !errors.Is(err2, tc.wantErr) {
							t.Errorf("second Read err = %v, want the same failure", err2)
						}
					})
				}
			})
		}
	}
}

// TestUploadTrailer checks what the sending side of a client stream puts in
// its trailer, and that it refuses use after commit or abort.
func TestUploadTrailer(t *testing.T) {
	cases := []struct {
		name   string
		writes []int
	}{
		{"empty", nil},
		{"small", []int{10, 20}},
		{"more than a chunk", []int{DefaultChunkSize + 17, 3}},
	}
	for _, tc := range cases {
		for _, readFrom := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/readFrom=%v", tc.name, readFrom), func(t *testing.T) {
				var rec recorder
				var trailers []*pb.StreamTrailer
				cancelled := 0
				u := newUpload(rec.send, func(tr *pb.StreamTrailer) error {
					trailers = append(trailers, tr)
					return nil
				}, func() { cancelled++ })
				var all []byte
				for i, n := range tc.writes {
					all = append(all, testData(n, byte(i))...)
				}
				if readFrom {
					// io.Copy takes the ReaderFrom; odd-sized reads.
					if k, err := io.Copy(u, iotest.HalfReader(bytes.NewReader(all))); k != int64(len(all)) || err != nil {
						t.Fatalf("io.Copy = %d, %v", k, err)
					}
				} else {
					for i, n := range tc.writes {
						if k, err := u.Write(testData(n, byte(i))); k != n || err != nil {
							t.Fatalf("Write = %d, %v", k, err)
						}
					}
				}
				size, digest, err := u.finish()
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(all)
				if size != int64(len(all)) || !bytes.Equal(digest, sum[:]) {
					t.Errorf("finish = %d %x, want %d %x", size, digest, len(all), sum)
				}
				if len(trailers) != 1 || trailers[0].GetSize() != uint64(len(all)) || !bytes.Equal(trailers[0].GetSha256(), sum[:]) {
					t.Fatalf("trailers sent = %v, want one with size %d", trailers, len(all))
				}
				if crc := crc32.Checksum(all, castagnoli); trailers[0].Crc32C == nil || trailers[0].GetCrc32C() != crc {
					t.Errorf("trailer crc32c %v, want %08x", trailers[0].Crc32C, crc)
				}
				if !bytes.Equal(rec.joined(), all) {
					t.Error("data chunks differ from the data written")
				}
				// What was sent is accepted by the receiving side.
				var msgs []streamMsg
				for _, c := range rec.chunks {
					msgs = append(msgs, streamMsg{data: c})
				}
				msgs = append(msgs, streamMsg{trailer: trailers[0]})
				for _, check := range trailerChecks {
					got, err := io.ReadAll(newTrailerReader(check, (&fakeStream{msgs: msgs}).next))
					if err != nil || !bytes.Equal(got, all) {
						t.Errorf("%v receiver read %d bytes, err %v", check, len(got), err)
					}
				}
				if _, err := u.Write([]byte("late")); !errors.Is(err, ErrInvalidArgument) {
					t.Errorf("Write after finish: err = %v, want ErrInvalidArgument", err)
				}
				if _, _, err := u.finish(); !errors.Is(err, ErrInvalidArgument) {
					t.Errorf("second finish: err = %v, want ErrInvalidArgument", err)
				}
				if len(trailers) != 1 {
					t.Errorf("%d trailers sent, want 1", len(trailers))
				}
				u.abort()
				if cancelled != 1 {
					t.Errorf("abort cancelled %d times, want 1", cancelled)
				}
			})
		}
	}
}

func TestUploadAbortSendsNoTrailer(t *testing.T) {
	var rec recorder
	trailers := 0
	cancelled := 0
	u := newUpload(rec.send, func(*pb.StreamTrailer) error { trailers++; return nil }, func() { cancelled++ })
	if _, err := u.Write(testData(100, 0)); err != nil {
		t.Fatal(err)
	}
	u.abort()
	if _, err := u.Write([]byte("x")); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Write after abort: err = %v, want ErrInvalidArgument", err)
	}
	if _, _, err := u.finish(); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("finish after abort: err = %v, want ErrInvalidArgument", err)
	}
	if trailers != 0 || len(rec.chunks) != 0 || cancelled != 1 {
		t.Errorf("after abort: %d trailers, %d chunks, %d cancels; want 0, 0, 1", trailers, len(rec.chunks), cancelled)
	}
}

// TestTrailerReaderWriteTo: io.Copy takes the uncopied path through
// WriteTo and gets the same guarantees as Read.
func TestTrailerReaderWriteTo(t *testing.T) {
	data := testData(300000, 5)
	bad := trailerFor(data)
	bad.Size++
	cases := []struct {
		name    string
		msgs    []streamMsg
		wantErr error
	}{
		{"matching trailer", dataMsgs(data, []int{100000, 0, 50000}, streamMsg{trailer: trailerFor(data)}), nil},
		{"wrong trailer", dataMsgs(data, []int{100000}, streamMsg{trailer: bad}), ErrIntegrity},
		{"no trailer", dataMsgs(data, []int{100000}), ErrIntegrity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newTrailerReader(uploadCheck, (&fakeStream{msgs: tc.msgs}).next)
			var buf bytes.Buffer
			n, err := io.Copy(&buf, r)
			if tc.wantErr == nil {
				if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) || !r.verified {
					t.Fatalf("copy = %d, %v (verified %v)", n, err, r.verified)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || r.verified {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	// A failing destination stops the copy with its error.
	boom := errors.New("disk full")
	r := newTrailerReader(uploadCheck, (&fakeStream{msgs: dataMsgs(data, nil, streamMsg{trailer: trailerFor(data)})}).next)
	if _, err := r.WriteTo(writerFunc(func([]byte) (int, error) { return 0, boom })); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the writer's error", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
