package encrypt

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"

	"github.com/labelbackup/label-backup/host/internal/compress"
)

// BenchmarkEncrypt measures encryption throughput: 256 MiB written in 1 MiB
// pieces (what the compressor hands on) through each writer to io.Discard.
// Run: go test -run '^$' -bench Encrypt -benchtime 3x ./internal/encrypt/
func BenchmarkEncrypt(b *testing.B) {
	const total = 256 << 20
	chunk := make([]byte, 1<<20)
	rand.Read(chunk) // compressed data looks random
	pub, _ := goKeyPair(b)
	recipient, _ := ageKeyPair(b)
	ageEnc, err := AgeEncryption([]string{recipient})
	if err != nil {
		b.Fatal(err)
	}
	for _, enc := range []Encryption{{}, mustNew(b, pub, nil), ageEnc} {
		b.Run(enc.Name(), func(b *testing.B) {
			b.SetBytes(total)
			b.ReportAllocs()
			for b.Loop() {
				w, err := enc.NewWriter(io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				for n := 0; n < total; n += len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecrypt measures the restore side: 64 MiB decrypted from memory.
func BenchmarkDecrypt(b *testing.B) {
	const total = 64 << 20
	data := make([]byte, total)
	rand.Read(data)
	pub, sec := goKeyPair(b)
	recipient, idFile := ageKeyPair(b)
	ageEnc, err := AgeEncryption([]string{recipient})
	if err != nil {
		b.Fatal(err)
	}
	ids, err := LoadIdentities(sec, nil, idFile)
	if err != nil {
		b.Fatal(err)
	}
	for _, enc := range []Encryption{mustNew(b, pub, nil), ageEnc} {
		ciphertext := encryptAll(b, enc, data)
		b.Run(enc.Name(), func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(ciphertext), ids)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, r); err != nil || n != total {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
		})
	}
}

// BenchmarkAfterGzip measures the pipeline's stack, dump bytes in: gzip
// (parallel), then encryption, of compressible data. MB/s is of the dump,
// so "none" is gzip alone and the others show what encryption adds.
func BenchmarkAfterGzip(b *testing.B) {
	const total = 128 << 20
	data := compressible(total)
	pub, _ := goKeyPair(b)
	recipient, _ := ageKeyPair(b)
	ageEnc, err := AgeEncryption([]string{recipient})
	if err != nil {
		b.Fatal(err)
	}
	for _, enc := range []Encryption{{}, mustNew(b, pub, nil), ageEnc} {
		b.Run(enc.Name(), func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				ew, err := enc.NewWriter(io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				zw, err := compress.NewWriter(compress.Gzip, ew)
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < total; off += 1 << 20 {
					if _, err := zw.Write(data[off : off+1<<20]); err != nil {
						b.Fatal(err)
					}
				}
				if err := zw.Close(); err != nil {
					b.Fatal(err)
				}
				if err := ew.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
