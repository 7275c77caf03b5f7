package redis

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc64"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

func TestCRC64Jones(t *testing.T) {
	// The check value of Redis's CRC-64 (src/crc64.c's self-test).
	if got := jones.update(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("crc64(123456789) = %#x, want 0xe9c6d914c4b8d9ca", got)
	}
	// Slicing-by-8 agrees with the standard library's bytewise reflected
	// CRC (which adds an initial and final inversion) on every length and
	// in any chunking.
	tab := crc64.MakeTable(bits.Reverse64(jonesPoly))
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 300)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for n := 0; n <= len(data); n++ {
		want := ^crc64.Update(^uint64(0), tab, data[:n])
		cut := n / 3
		got := jones.update(jones.update(0, data[:cut]), data[cut:n])
		if got != want {
			t.Fatalf("length %d: %#x, want %#x", n, got, want)
		}
	}
}

// makeRDB builds a syntactically plausible RDB: header, body, EOF opcode
// and CRC-64.
func makeRDB(version string, body []byte) []byte {
	b := append([]byte("REDIS"+version), body...)
	b = append(b, rdbOpEOF)
	return binary.LittleEndian.AppendUint64(b, jones.update(0, b))
}

func TestRDBWriter(t *testing.T) {
	good := makeRDB("0010", []byte("\xfa\x09redis-ver\x067.0.15\xfe\x00\xfb\x01\x00\x00\x01k\x01v"))
	noSum := append(bytes.Clone(good[:len(good)-8]), make([]byte, 8)...)
	flipped := bytes.Clone(good)
	flipped[12] ^= 0x20
	badSum := bytes.Clone(good)
	badSum[len(badSum)-1] ^= 1
	old := append([]byte("REDIS0004\xfe\x00\x00\x01k\x01v"), rdbOpEOF)
	tests := []struct {
		name        string
		in          []byte
		wantChecked bool
		wantErr     bool // an ErrIntegrity
		wantOut     bool // the input reaches the writer
	}{
		{"valid", good, true, false, true},
		{"checksum disabled", noSum, false, false, true},
		{"old format without checksum", old, false, false, true},
		{"bit flip in the body", flipped, false, true, true},
		{"bad checksum", badSum, false, true, true},
		{"truncated", good[:len(good)-5], false, true, true},
		{"only the header", good[:9], false, true, true},
		{"shorter than the header", good[:5], false, true, false},
		{"empty", nil, false, true, false},
		{"no EOF opcode", append([]byte("REDIS0010"), make([]byte, 20)...), false, true, true},
		{"old format without EOF opcode", []byte("REDIS0004\xfe\x00"), false, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Byte by byte and all at once.
			for _, step := range []int{1, len(tc.in) + 1} {
				var out bytes.Buffer
				rw := newRDBWriter(&out)
				for p := tc.in; len(p) > 0; {
					k := min(step, len(p))
					if n, err := rw.Write(p[:k]); err != nil || n != k {
						t.Fatalf("Write = %d, %v", n, err)
					}
					p = p[k:]
				}
				checked, err := rw.finish()
				if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, sdk.ErrIntegrity)) {
					t.Fatalf("step %d: finish = %v, %v", step, checked, err)
				}
				if checked != tc.wantChecked {
					t.Errorf("step %d: checked = %v", step, checked)
				}
				if tc.wantOut && !bytes.Equal(out.Bytes(), tc.in) {
					t.Errorf("step %d: writer got %d bytes, want the %d given", step, out.Len(), len(tc.in))
				}
				if !tc.wantOut && out.Len() != 0 {
					t.Errorf("step %d: writer got %d bytes before the header was complete", step, out.Len())
				}
			}
		})
	}
}

func TestRDBWriterRejectsBadMagicBeforeWriting(t *testing.T) {
	for _, in := range []string{"HTTP/1.1 400 Bad Request\r\n", "REDIS001x....", "-ERR oops\r\n"} {
		var out bytes.Buffer
		rw := newRDBWriter(&out)
		_, err := rw.Write([]byte(in))
		if !errors.Is(err, sdk.ErrIntegrity) {
			t.Errorf("%q: err = %v, want ErrIntegrity", in, err)
		}
		if out.Len() != 0 {
			t.Errorf("%q: %d bytes written", in, out.Len())
		}
	}
}
