package encrypt

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/host/internal/compress"
)

// TestGPGRoundTripWithRealGnuPG encrypts with our writer to keys made by
// the real gpg, decrypts with "gpg --decrypt" and with our reader.
func TestGPGRoundTripWithRealGnuPG(t *testing.T) {
	for _, kind := range []string{"cv25519", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			data := compressible(5 << 20)
			if kind == "rsa" {
				data = data[:1<<20] // size is covered once; this is about the key type
			}
			g := newGnuPG(t)
			var fpr string
			if kind == "rsa" {
				fpr = g.genKey("RSA Test <rsa@example>", "", "rsa2048", "default", "never")
				g.run(nil, "--passphrase", "", "--quick-add-key", fpr, "rsa2048", "encr", "never")
			} else {
				fpr = g.genKey("Test <t@example>", "", "ed25519", "cert", "never")
				g.run(nil, "--passphrase", "", "--quick-add-key", fpr, "cv25519", "encr", "never")
			}
			pubPath := g.exportPublic(fpr, true)

			enc, err := New(pubPath, nil)
			if err != nil {
				t.Fatal(err)
			}
			if enc.Name() != "gpg" || enc.Extension() != ".gpg" || !enc.Enabled() {
				t.Fatalf("name %q ext %q enabled %v", enc.Name(), enc.Extension(), enc.Enabled())
			}
			if got := enc.Recipients(); len(got) != 1 || got[0] != fpr {
				t.Fatalf("recipients %v, want [%s]", got, fpr)
			}
			if !strings.Contains(enc.String(), fpr) || !enc.Expiry().IsZero() {
				t.Fatalf("String %q, Expiry %v", enc.String(), enc.Expiry())
			}
			ciphertext := encryptAll(t, enc, data)
			if Detect(ciphertext) != GPG {
				t.Fatalf("Detect(our output) = %q", Detect(ciphertext))
			}
			if bytes.Contains(ciphertext, data[:64]) {
				t.Fatal("plaintext visible in the ciphertext")
			}

			// The real gpg decrypts it.
			encPath := writeFile(t, "backup.gpg", ciphertext)
			outPath := filepath.Join(t.TempDir(), "out")
			g.run(nil, "--decrypt", "--output", outPath, encPath)
			got, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("gpg --decrypt gave %d bytes that differ from the %d written", len(got), len(data))
			}
			// ...and sees no compression layer, and an integrity-protected packet.
			packets := string(g.run(nil, "--list-packets", encPath))
			if strings.Contains(packets, "compressed packet") || !strings.Contains(packets, "literal data packet") ||
				!strings.Contains(packets, "mdc_method: 2") {
				t.Fatalf("unexpected packet structure:\n%s", packets)
			}

			// Our reader decrypts it with the exported private key.
			ids, err := LoadGPGPrivateKey(g.exportSecret(fpr, ""), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"", "gpg"} {
				got, err := decryptAll(t, ciphertext, name, ids)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("NewReaderAs(%q): %d bytes, %v", name, len(got), err)
				}
			}

			// A binary export loads too and gives the same recipient.
			key, err := LoadGPGPublicKey(g.exportPublic(fpr, false))
			if err != nil {
				t.Fatal(err)
			}
			if fp := key.Fingerprints(); len(fp) != 1 || fp[0] != fpr {
				t.Fatalf("binary key fingerprints %v", fp)
			}

			// And what gpg itself encrypts (compressed, its own defaults)
			// our reader decrypts.
			plainPath := writeFile(t, "plain", data[:1<<20])
			gpgOut := filepath.Join(t.TempDir(), "byGPG.gpg")
			g.run(nil, "--trust-model", "always", "--compress-algo", "zlib", "--recipient", fpr, "--output", gpgOut, "--encrypt", plainPath)
			byGPG, _ := os.ReadFile(gpgOut)
			if got, err := decryptAll(t, byGPG, "", ids); err != nil || !bytes.Equal(got, data[:1<<20]) {
				t.Fatalf("decrypting gpg's own output: %d bytes, %v", len(got), err)
			}
			armoredOut := filepath.Join(t.TempDir(), "byGPG.asc")
			g.run(nil, "--trust-model", "always", "--armor", "--recipient", fpr, "--output", armoredOut, "--encrypt", plainPath)
			byGPG, _ = os.ReadFile(armoredOut)
			if got, err := decryptAll(t, byGPG, "gpg", ids); err != nil || !bytes.Equal(got, data[:1<<20]) {
				t.Fatalf("decrypting gpg's armored output: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestGPGAfterCompression is the pipeline's stack: gzip, then encryption;
// "gpg --decrypt | gunzip" restores the dump.
func TestGPGAfterCompression(t *testing.T) {
	g := newGnuPG(t)
	fpr := g.genKey("Stack <s@example>", "", "future-default", "default", "never")
	enc, err := New(g.exportPublic(fpr, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	data := compressible(4 << 20)
	var stored bytes.Buffer
	ew, err := enc.NewWriter(&stored)
	if err != nil {
		t.Fatal(err)
	}
	zw, err := compress.NewWriter(compress.Gzip, ew)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	if stored.Len() > len(data)/4 {
		t.Fatalf("stored %d bytes for %d: compression did not happen before encryption", stored.Len(), len(data))
	}
	compressed := g.run(nil, "--decrypt", writeFile(t, "b.dump.gz.gpg", stored.Bytes()))
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("gpg --decrypt | gunzip: %d bytes, %v", len(got), err)
	}
}

func TestGPGPassphraseProtectedPrivateKey(t *testing.T) {
	g := newGnuPG(t)
	// A cheap passphrase hash: the default costs seconds under -race.
	if err := os.WriteFile(filepath.Join(g.home, "gpg-agent.conf"), []byte("s2k-count 65536\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fpr := g.genKey("Locked <l@example>", "correct horse", "future-default", "default", "never")
	enc, err := New(g.exportPublic(fpr, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	data := compressible(300 << 10)
	ciphertext := encryptAll(t, enc, data)
	sec := g.exportSecret(fpr, "correct horse")

	_, err = LoadGPGPrivateKey(sec, nil)
	if !errors.Is(err, ErrPassphraseRequired) {
		t.Fatalf("no passphrase: %v", err)
	}
	mustContain(t, err, sec, fpr, "passphrase")
	_, err = LoadGPGPrivateKey(sec, []byte("wrong"))
	mustContain(t, err, "wrong passphrase", fpr)

	ids, err := LoadIdentities(sec, []byte("correct horse"), "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decryptAll(t, ciphertext, "gpg", ids); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("decrypt: %d bytes, %v", len(got), err)
	}
}

func TestGPGWrongPrivateKey(t *testing.T) {
	g := newGnuPG(t)
	a := g.genKey("A <a@example>", "", "future-default", "default", "never")
	b := g.genKey("B <b@example>", "", "future-default", "default", "never")
	enc, err := New(g.exportPublic(a, true), nil)
	if err != nil {
		t.Fatal(err)
	}
	ciphertext := encryptAll(t, enc, []byte("secret dump"))
	ids, err := LoadGPGPrivateKey(g.exportSecret(b, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = decryptAll(t, ciphertext, "", ids)
	mustContain(t, err, "none of the GPG private keys")
	// The message names the encryption subkey of A: the last 16 hex digits
	// of its fingerprint.
	var subFpr string
	for _, line := range strings.Split(string(g.run(nil, "--with-colons", "--with-subkey-fingerprints", "--list-keys", a)), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" && f[9] != a {
			subFpr = f[9]
		}
	}
	mustContain(t, err, subFpr[len(subFpr)-16:])

	// age identities only: a clear "no GPG key given".
	_, idFile := ageKeyPair(t)
	ageIDs, err := LoadAgeIdentities(idFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = decryptAll(t, ciphertext, "", ageIDs)
	mustContain(t, err, "GPG-encrypted", "no GPG private key")
}

// TestGPGUnusableKeys: every way a public key can be unusable is refused
// at load with a message saying what is wrong.
func TestGPGUnusableKeys(t *testing.T) {
	g := newGnuPG(t)
	dir := t.TempDir()

	signOnly := g.genKey("Sign Only <so@example>", "", "ed25519", "sign", "never")
	expired := g.genKey("Expired <ex@example>", "", "future-default", "default", "2020-01-02",
		"--faked-system-time", "20200101T000000")
	subExpired := g.genKey("Old Subkey <os@example>", "", "ed25519", "cert", "never", "--faked-system-time", "20190101T000000")
	g.run(nil, "--faked-system-time", "20200101T000000", "--passphrase", "", "--quick-add-key", subExpired, "cv25519", "encr", "2020-01-02")
	revoked := g.genKey("Revoked <rv@example>", "", "future-default", "default", "never")
	cert, err := os.ReadFile(filepath.Join(g.home, "openpgp-revocs.d", revoked+".rev"))
	if err != nil {
		t.Fatal(err)
	}
	g.run(regexp.MustCompile(`(?m)^:-----`).ReplaceAll(cert, []byte("-----")), "--import")
	good := g.genKey("Good <good@example>", "", "future-default", "default", "never")

	ageRecipient, _ := ageKeyPair(t)
	cases := []struct {
		name string
		path string
		want []string
	}{
		{"missing file", filepath.Join(dir, "nope.asc"), []string{"nope.asc", "does not exist"}},
		{"directory", dir, []string{"is a directory"}},
		{"empty file", writeFile(t, "empty.asc", []byte("\n")), []string{"is empty"}},
		{"not a key", writeFile(t, "notes.txt", []byte("hello, this is not a key\n")), []string{"not an OpenPGP public key", "gpg --export --armor"}},
		{"random binary", writeFile(t, "rand.bin", []byte{0xff, 0x00, 0x13, 0x37}), []string{"not an OpenPGP public key"}},
		{"age key", writeFile(t, "age.pub", []byte(ageRecipient+"\n")), []string{"looks like an age key"}},
		{"armored message", writeFile(t, "msg.asc", g.run([]byte("x"), "--armor", "--trust-model", "always", "--recipient", good, "--encrypt")), []string{"PGP MESSAGE", "not a key"}},
		{"broken armor", writeFile(t, "broken.asc", []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n")), []string{"cannot read the OpenPGP public key"}},
		{"private key", g.exportSecret(good, ""), []string{"private (secret) key", "only the public key"}},
		{"sign-only key", g.exportPublic(signOnly, true), []string{signOnly, "no encryption subkey", "--quick-add-key"}},
		{"expired key", g.exportPublic(expired, true), []string{expired, "expired on 2020-01-02"}},
		{"expired subkey", g.exportPublic(subExpired, true), []string{subExpired, "encryption subkey expired on 2020-01-02"}},
		{"revoked key", g.exportPublic(revoked, true), []string{revoked, "is revoked"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadGPGPublicKey(c.path)
			mustContain(t, err, c.want...)
			t.Log(err)
			// Through the config constructor the variable is named.
			_, err = Settings{GPGPublicKeyPath: c.path}.Load()
			mustContain(t, err, append([]string{"GPG_PUBLIC_KEY_PATH: "}, c.want...)...)
		})
	}
	if _, err := LoadGPGPublicKey(g.exportPublic(good, true)); err != nil {
		t.Fatalf("good key refused: %v", err)
	}

	// A backup made while a key was valid still restores after it expired:
	// decryption never checks expiry.
	made := writeFile(t, "old.gpg", g.run([]byte("made in 2020"), "--faked-system-time", "20200101T100000",
		"--trust-model", "always", "--recipient", expired, "--encrypt"))
	ids, err := LoadGPGPrivateKey(g.exportSecret(expired, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decryptAll(t, []byte(mustRead(t, made)), "gpg", ids); err != nil || string(got) != "made in 2020" {
		t.Fatalf("backup to a since expired key: %q, %v", got, err)
	}

	// A keyring file with a good key and a bad one is refused as a whole.
	both := append(g.run(nil, "--export", good), g.run(nil, "--export", signOnly)...)
	_, err = LoadGPGPublicKey(writeFile(t, "both.gpg", both))
	mustContain(t, err, signOnly, "no encryption subkey")
}

// TestGPGSeveralKeysInOneFile: a file with several keys encrypts to each.
func TestGPGSeveralKeysInOneFile(t *testing.T) {
	g := newGnuPG(t)
	a := g.genKey("A <a@example>", "", "future-default", "default", "never")
	b := g.genKey("B <b@example>", "", "future-default", "default", "never")
	enc, err := New(writeFile(t, "two.asc", g.run(nil, "--armor", "--export", a, b)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc.Recipients()) != 2 {
		t.Fatalf("recipients %v", enc.Recipients())
	}
	ciphertext := encryptAll(t, enc, []byte("for both"))
	for _, fpr := range []string{a, b} {
		ids, err := LoadGPGPrivateKey(g.exportSecret(fpr, ""), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := decryptAll(t, ciphertext, "gpg", ids); err != nil || string(got) != "for both" {
			t.Fatalf("key %s: %q, %v", fpr, got, err)
		}
	}
}

func TestGPGPrivateKeyFileErrors(t *testing.T) {
	pub, _ := goKeyPair(t)
	_, err := LoadGPGPrivateKey(pub, nil)
	mustContain(t, err, "only a public key", "--export-secret-keys")
	_, err = LoadGPGPrivateKey(filepath.Join(t.TempDir(), "missing.asc"), nil)
	mustContain(t, err, "missing.asc", "does not exist")
	_, err = LoadGPGPrivateKey(writeFile(t, "junk", []byte("junk\n")), nil)
	mustContain(t, err, "not an OpenPGP private key")
	_, idFile := ageKeyPair(t)
	_, err = LoadGPGPrivateKey(idFile, nil)
	mustContain(t, err, "looks like an age key")
}

// TestGPGTamperedOrTruncated: altered or cut ciphertext never reads back as
// a clean stream.
func TestGPGTamperedOrTruncated(t *testing.T) {
	pub, sec := goKeyPair(t)
	enc, err := New(pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := LoadGPGPrivateKey(sec, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := compressible(1 << 20)
	ciphertext := encryptAll(t, enc, data)
	if got, err := decryptAll(t, ciphertext, "gpg", ids); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("clean round trip: %d bytes, %v", len(got), err)
	}
	for _, pos := range []int{len(ciphertext) / 2, len(ciphertext) - 5} {
		bad := bytes.Clone(ciphertext)
		bad[pos] ^= 0x01
		if _, err := decryptAll(t, bad, "gpg", ids); err == nil {
			t.Fatalf("flipped a bit at %d of %d: no error", pos, len(bad))
		}
	}
	if _, err := decryptAll(t, ciphertext[:len(ciphertext)-100], "gpg", ids); err == nil {
		t.Fatal("truncated: no error")
	}
}
