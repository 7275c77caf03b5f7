package encrypt

import (
	"bytes"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/armor"
)

func TestAgeRoundTrip(t *testing.T) {
	data := compressible(3 << 20)
	recipient, idFile := ageKeyPair(t)
	enc, err := New("", []string{recipient})
	if err != nil {
		t.Fatal(err)
	}
	if enc.Name() != "age" || enc.Extension() != ".age" || enc.ContentType("application/gzip") != "application/octet-stream" {
		t.Fatalf("name %q ext %q", enc.Name(), enc.Extension())
	}
	if r := enc.Recipients(); len(r) != 1 || r[0] != recipient || enc.String() != "age to "+recipient {
		t.Fatalf("recipients %v, String %q", r, enc.String())
	}
	ciphertext := encryptAll(t, enc, data)
	if !bytes.HasPrefix(ciphertext, []byte("age-encryption.org/v1\n")) || Detect(ciphertext) != Age {
		t.Fatalf("not an age file: %q", ciphertext[:30])
	}
	ids, err := LoadAgeIdentities(idFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "age"} {
		got, err := decryptAll(t, ciphertext, name, ids)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("NewReaderAs(%q): %d bytes, %v", name, len(got), err)
		}
	}
	// The library's own Decrypt (what the age CLI uses) agrees.
	id, _ := age.ParseIdentities(strings.NewReader(mustRead(t, idFile)))
	r, err := age.Decrypt(bytes.NewReader(ciphertext), id...)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := out.ReadFrom(r); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("age.Decrypt: %d bytes, %v", out.Len(), err)
	}

	// Armored age files (age --armor) are read too.
	var armored bytes.Buffer
	aw := armor.NewWriter(&armored)
	aw.Write(ciphertext)
	aw.Close()
	if got, err := decryptAll(t, armored.Bytes(), "", ids); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("armored: %d bytes, %v", len(got), err)
	}
}

func TestAgeSeveralRecipientsAndPostQuantum(t *testing.T) {
	r1, f1 := ageKeyPair(t)
	r2, f2 := ageKeyPair(t)
	enc, err := Settings{AgeRecipients: r1 + ", " + r2 + " " + r1}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(enc.Recipients()) != 2 {
		t.Fatalf("duplicates kept: %v", enc.Recipients())
	}
	ciphertext := encryptAll(t, enc, []byte("dump"))
	for _, f := range []string{f1, f2} {
		ids, err := LoadIdentities("", nil, f)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := decryptAll(t, ciphertext, "age", ids); err != nil || string(got) != "dump" {
			t.Fatalf("%s: %q %v", f, got, err)
		}
	}

	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	enc, err = AgeEncryption([]string{pq.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	ciphertext = encryptAll(t, enc, []byte("post-quantum dump"))
	ids, err := LoadAgeIdentities(writeFile(t, "pq.txt", []byte(pq.String()+"\n")))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decryptAll(t, ciphertext, "", ids); err != nil || string(got) != "post-quantum dump" {
		t.Fatalf("pq: %q %v", got, err)
	}
	// age refuses mixing post-quantum and classic recipients: found at
	// configuration, not at the first backup.
	_, err = AgeEncryption([]string{r1, pq.Recipient().String()})
	mustContain(t, err, "post-quantum")
}

func TestAgeWrongIdentity(t *testing.T) {
	recipient, _ := ageKeyPair(t)
	_, otherFile := ageKeyPair(t)
	enc, err := AgeEncryption([]string{recipient})
	if err != nil {
		t.Fatal(err)
	}
	ciphertext := encryptAll(t, enc, []byte("secret"))
	ids, err := LoadAgeIdentities(otherFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = decryptAll(t, ciphertext, "", ids)
	mustContain(t, err, "none of the age identities in "+otherFile, "other recipients")

	pub, sec := goKeyPair(t)
	_ = pub
	gpgIDs, err := LoadGPGPrivateKey(sec, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = decryptAll(t, ciphertext, "", gpgIDs)
	mustContain(t, err, "age-encrypted", "no age identity")
}

func TestAgeRecipientErrors(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	good := id.Recipient().String()
	secret := id.String()
	cases := []struct {
		name, in string
		want     []string
	}{
		{"garbage", "hello", []string{"not an age public key"}},
		{"bad checksum", good[:len(good)-1] + "q", []string{"invalid age recipient"}},
		{"truncated", good[:20], []string{"invalid age recipient"}},
		{"secret key", secret, []string{"SECRET key", "age-keygen -y"}},
		{"ssh key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ user@host", []string{"SSH"}},
		{"plugin", "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t", []string{"plugin", "age1yubikey"}},
		{"gpg fingerprint", "6979021CDA3260C980F099398DD04744B1FB6A2F", []string{"not an age public key"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseAgeRecipients([]string{c.in})
			mustContain(t, err, c.want...)
			if strings.Contains(err.Error(), secret) {
				t.Fatal("the secret key is echoed in the error")
			}
			// In a list, the entry is numbered; through Settings, the
			// variable is named.
			_, err = Settings{AgeRecipients: good + "," + c.in}.Load()
			mustContain(t, err, append([]string{"AGE_RECIPIENTS: recipient 2 of "}, c.want...)...)
			if strings.Contains(err.Error(), secret) {
				t.Fatal("the secret key is echoed in the error")
			}
		})
	}
	if _, err := ParseAgeRecipients(nil); err == nil {
		t.Fatal("no recipients accepted")
	}
}

func TestAgeRecipientsFile(t *testing.T) {
	r1, _ := ageKeyPair(t)
	r2, _ := ageKeyPair(t)
	path := writeFile(t, "recipients.txt", []byte("# backup keys\n\n"+r1+"\n  # ops laptop\n"+r2+"  \n"))
	got, err := ReadAgeRecipientsFile(path)
	if err != nil || len(got) != 2 || got[0] != r1 || got[1] != r2 {
		t.Fatalf("got %v, %v", got, err)
	}
	// Variable and file combine.
	r3, _ := ageKeyPair(t)
	enc, err := Settings{AgeRecipients: r3, AgeRecipientsFile: path}.Load()
	if err != nil || len(enc.Recipients()) != 3 || enc.Name() != Age {
		t.Fatalf("combined: %v, %v", enc.Recipients(), err)
	}

	_, err = ReadAgeRecipientsFile(writeFile(t, "bad.txt", []byte("# ok\n"+r1+"\nnot-a-key\n")))
	mustContain(t, err, "bad.txt line 3", "not an age public key")
	_, err = Settings{AgeRecipientsFile: writeFile(t, "only-comments.txt", []byte("# nothing\n\n"))}.Load()
	mustContain(t, err, "AGE_RECIPIENTS_FILE: ", "holds no age recipient")
	_, err = Settings{AgeRecipientsFile: "/nonexistent/recipients.txt"}.Load()
	mustContain(t, err, "AGE_RECIPIENTS_FILE: ", "/nonexistent/recipients.txt does not exist")
}

func TestAgeIdentityFileErrors(t *testing.T) {
	recipient, _ := ageKeyPair(t)
	_, err := LoadAgeIdentities(writeFile(t, "pub-only.txt", []byte(recipient+"\n")))
	mustContain(t, err, "not a valid age identity file", "line 1")
	_, err = LoadAgeIdentities(writeFile(t, "comments.txt", []byte("# nothing here\n")))
	mustContain(t, err, "not a valid age identity file")
	_, sec := goKeyPair(t)
	_, err = LoadAgeIdentities(sec)
	mustContain(t, err, "OpenPGP key, not an age identity file")
	_, err = LoadIdentities("", nil, "/nonexistent/key.txt")
	mustContain(t, err, "does not exist")
}

func TestAgeTamperedOrTruncated(t *testing.T) {
	recipient, idFile := ageKeyPair(t)
	enc, _ := AgeEncryption([]string{recipient})
	ids, err := LoadAgeIdentities(idFile)
	if err != nil {
		t.Fatal(err)
	}
	data := compressible(1 << 20)
	ciphertext := encryptAll(t, enc, data)
	for _, pos := range []int{len(ciphertext) / 2, len(ciphertext) - 5} {
		bad := bytes.Clone(ciphertext)
		bad[pos] ^= 0x01
		if _, err := decryptAll(t, bad, "age", ids); err == nil {
			t.Fatalf("flipped a bit at %d of %d: no error", pos, len(bad))
		}
	}
	_, err = decryptAll(t, ciphertext[:len(ciphertext)-100], "age", ids)
	mustContain(t, err, "age decryption")
	// Truncated at a chunk boundary (64 KiB of plaintext) too.
	mac := bytes.Index(ciphertext, []byte("\n--- ")) + 1
	payload := mac + bytes.IndexByte(ciphertext[mac:], '\n') + 1 + 16 // header, then a 16-byte nonce
	_, err = decryptAll(t, ciphertext[:payload+3*(64<<10+16)], "age", ids)
	if err == nil {
		t.Fatal("truncated at a chunk boundary: no error")
	}
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := readKeyFile(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
