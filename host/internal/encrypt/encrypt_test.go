package encrypt

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func TestNoneIsAPassthrough(t *testing.T) {
	for _, enc := range []Encryption{{}, mustNew(t, "", nil), mustLoad(t, Settings{AgeRecipients: " , "})} {
		if enc.Name() != "none" || enc.Extension() != "" || enc.Enabled() || enc.Recipients() != nil ||
			enc.ContentType("application/gzip") != "application/gzip" || enc.String() != "none" || enc.Check() != nil {
			t.Fatalf("none: %q %q %v %v", enc.Name(), enc.Extension(), enc.Enabled(), enc.Recipients())
		}
		data := compressible(100 << 10)
		if got := encryptAll(t, enc, data); !bytes.Equal(got, data) {
			t.Fatal("none altered the data")
		}
	}
	// Unencrypted data reads back as is, detected or declared.
	for _, name := range []string{"", "none"} {
		got, err := decryptAll(t, []byte("\x1f\x8bplain gzip"), name, Identities{})
		if err != nil || string(got) != "\x1f\x8bplain gzip" {
			t.Fatalf("%q: %q %v", name, got, err)
		}
	}
	if got, err := decryptAll(t, nil, "", Identities{}); err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %q %v", got, err)
	}
}

func TestChooseOne(t *testing.T) {
	pub, _ := goKeyPair(t)
	recipient, _ := ageKeyPair(t)
	recipientsFile := writeFile(t, "r.txt", []byte(recipient+"\n"))

	_, err := New(pub, []string{recipient})
	mustContain(t, err, "choose one")
	_, err = Settings{GPGPublicKeyPath: pub, AgeRecipients: recipient}.Load()
	mustContain(t, err, "GPG_PUBLIC_KEY_PATH and AGE_RECIPIENTS are both set")
	_, err = Settings{GPGPublicKeyPath: pub, AgeRecipientsFile: recipientsFile}.Load()
	mustContain(t, err, "GPG_PUBLIC_KEY_PATH and AGE_RECIPIENTS_FILE are both set")

	if enc := mustLoad(t, Settings{GPGPublicKeyPath: pub}); enc.Name() != GPG {
		t.Fatalf("gpg settings gave %q", enc.Name())
	}
	if enc := mustLoad(t, Settings{AgeRecipientsFile: recipientsFile}); enc.Name() != Age {
		t.Fatalf("age settings gave %q", enc.Name())
	}
}

func TestDetect(t *testing.T) {
	cases := map[string]string{
		"age-encryption.org/v1\n-> X25519":           Age,
		"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl":   Age,
		"\n-----BEGIN PGP MESSAGE-----\n\nhQ":        GPG,
		"\x84\x5e\x03":                               GPG,  // old-format public-key session key packet
		"\xc1\x5e\x03":                               GPG,  // new-format
		"\x8c\x0d\x04":                               GPG,  // old-format passphrase session key packet
		"\x1f\x8b\x08\x00":                           None, // gzip
		"\x28\xb5\x2f\xfd":                           None, // zstd
		"PGDMP\x01":                                  None, // pg_dump custom format
		"\x99\x01\x0d":                               None, // a public key, not a message
		"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ": None,
		"": None,
	}
	for in, want := range cases {
		if got := Detect([]byte(in)); got != want {
			t.Errorf("Detect(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReaderChecksTheDeclaredEncryption(t *testing.T) {
	recipient, idFile := ageKeyPair(t)
	ageEnc, _ := AgeEncryption([]string{recipient})
	ageData := encryptAll(t, ageEnc, []byte("x"))
	pub, sec := goKeyPair(t)
	gpgData := encryptAll(t, mustNew(t, pub, nil), []byte("x"))
	ids, err := LoadIdentities(sec, nil, idFile)
	if err != nil {
		t.Fatal(err)
	}
	if ids.Empty() || (Identities{}).Empty() == false {
		t.Fatal("Empty")
	}
	_, err = decryptAll(t, ageData, "gpg", ids)
	mustContain(t, err, "should be gpg-encrypted but looks age-encrypted")
	_, err = decryptAll(t, gpgData, "age", ids)
	mustContain(t, err, "should be age-encrypted but looks gpg-encrypted")
	_, err = decryptAll(t, []byte("\x1f\x8b\x08"), "age", ids)
	mustContain(t, err, "does not look encrypted")
	_, err = decryptAll(t, ageData, "rot13", ids)
	mustContain(t, err, `unknown encryption "rot13"`)
	// With both identities loaded, detection picks the right one.
	for _, c := range [][]byte{ageData, gpgData} {
		if got, err := decryptAll(t, c, "", ids); err != nil || string(got) != "x" {
			t.Fatalf("%q %v", got, err)
		}
	}
}

// failingWriter accepts limit bytes, then fails.
type failingWriter struct {
	limit int
	err   error
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.limit {
		n := f.limit
		f.limit = 0
		return n, f.err
	}
	f.limit -= len(p)
	return len(p), nil
}

// TestWriteErrorsAreReturnedAndSticky: the sink's error comes back
// unchanged (the pipeline attributes it to the sink), and the writer stays
// failed.
func TestWriteErrorsAreReturnedAndSticky(t *testing.T) {
	pub, _ := goKeyPair(t)
	recipient, _ := ageKeyPair(t)
	ageEnc, _ := AgeEncryption([]string{recipient})
	diskFull := errors.New("no space left on device")
	for _, enc := range []Encryption{mustNew(t, pub, nil), ageEnc} {
		t.Run(enc.Name(), func(t *testing.T) {
			w, err := enc.NewWriter(&failingWriter{limit: 200 << 10, err: diskFull})
			if err != nil {
				t.Fatal(err)
			}
			chunk := compressible(64 << 10)
			var werr error
			for i := 0; i < 100 && werr == nil; i++ {
				_, werr = w.Write(chunk)
			}
			if !errors.Is(werr, diskFull) {
				t.Fatalf("write error %v, want the sink's", werr)
			}
			if _, err := w.Write([]byte("more")); !errors.Is(err, diskFull) {
				t.Fatalf("write after failure: %v", err)
			}
			if err := w.Close(); !errors.Is(err, diskFull) {
				t.Fatalf("close after failure: %v", err)
			}
		})
	}
	// The header write failing fails NewWriter.
	if _, err := mustNew(t, pub, nil).NewWriter(&failingWriter{err: diskFull}); !errors.Is(err, diskFull) {
		t.Fatalf("gpg header: %v", err)
	}
	if _, err := ageEnc.NewWriter(&failingWriter{err: diskFull}); !errors.Is(err, diskFull) {
		t.Fatalf("age header: %v", err)
	}
}

// TestConcurrentBackups: one Encryption serves every backup at once.
func TestConcurrentBackups(t *testing.T) {
	pub, sec := goKeyPair(t)
	recipient, idFile := ageKeyPair(t)
	ageEnc, _ := AgeEncryption([]string{recipient})
	ids, err := LoadIdentities(sec, nil, idFile)
	if err != nil {
		t.Fatal(err)
	}
	data := compressible(256 << 10)
	for _, enc := range []Encryption{mustNew(t, pub, nil), ageEnc} {
		var wg sync.WaitGroup
		outs := make([]bytes.Buffer, 4)
		errs := make([]error, len(outs))
		for i := range outs {
			wg.Go(func() {
				w, err := enc.NewWriter(&outs[i])
				if err == nil {
					_, err = w.Write(data)
				}
				if err == nil {
					err = w.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i := range outs {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if got, err := decryptAll(t, outs[i].Bytes(), enc.Name(), ids); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s #%d: %d bytes, %v", enc.Name(), i, len(got), err)
			}
		}
	}
}

func TestCloseTwiceAndWriteAfterClose(t *testing.T) {
	pub, _ := goKeyPair(t)
	var out bytes.Buffer
	w, err := mustNew(t, pub, nil).NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := out.Len()
	if err := w.Close(); err != nil || out.Len() != n {
		t.Fatalf("second close: %v, %d -> %d bytes", err, n, out.Len())
	}
	if _, err := w.Write([]byte("y")); err == nil {
		t.Fatal("write after close accepted")
	}
}

// liveHeapSink discards what it is given, but every few MiB collects
// garbage and records the live heap: the peak of what the writer in front
// of it keeps.
type liveHeapSink struct {
	n, next int
	peak    uint64
}

func (s *liveHeapSink) Write(p []byte) (int, error) {
	s.n += len(p)
	if s.n >= s.next {
		s.next += 2 << 20
		s.sample()
	}
	return len(p), nil
}

func (s *liveHeapSink) sample() {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	s.peak = max(s.peak, m.HeapAlloc)
}

// TestConstantMemory: one huge Write is encrypted in bounded memory: the
// live heap never grows by more than a little, however much is written.
func TestConstantMemory(t *testing.T) {
	pub, _ := goKeyPair(t)
	recipient, _ := ageKeyPair(t)
	ageEnc, _ := AgeEncryption([]string{recipient})
	data := compressible(16 << 20)
	for _, enc := range []Encryption{mustNew(t, pub, nil), ageEnc} {
		t.Run(enc.Name(), func(t *testing.T) {
			sink := &liveHeapSink{}
			sink.sample()
			base := sink.peak
			w, err := enc.NewWriter(sink)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			sink.sample()
			grew := int64(sink.peak) - int64(base)
			t.Logf("encrypting %d MiB in one write: live heap grew by at most %d KiB", len(data)>>20, grew>>10)
			if grew > 4<<20 {
				t.Fatalf("live heap grew by %d KiB while encrypting %d MiB", grew>>10, len(data)>>20)
			}
		})
	}
}

// TestKeyExpiringLater: a key with an expiry date works until then; Expiry
// reports it and Check catches the moment it passes.
func TestKeyExpiringLater(t *testing.T) {
	created := time.Now().Add(-time.Hour)
	e, err := openpgp.NewEntity("Soon", "", "soon@example", &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		KeyLifetimeSecs: 2 * 3600,
		Time:            func() time.Time { return created },
	})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	aw, _ := armor.Encode(&b, openpgp.PublicKeyType, nil)
	e.Serialize(aw)
	aw.Close()
	enc := mustNew(t, writeFile(t, "soon.asc", b.Bytes()), nil)
	want := created.Add(2 * time.Hour).Truncate(time.Second)
	if got := enc.Expiry(); !got.Equal(want) {
		t.Fatalf("Expiry %v, want %v", got, want)
	}
	if err := enc.Check(); err != nil {
		t.Fatal(err)
	}
	err = checkEncryptable(e, created.Add(3*time.Hour))
	mustContain(t, err, "expired on")
}

func mustNew(t testing.TB, gpgKeyPath string, ageRecipients []string) Encryption {
	t.Helper()
	enc, err := New(gpgKeyPath, ageRecipients)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func mustLoad(t testing.TB, s Settings) Encryption {
	t.Helper()
	enc, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}
