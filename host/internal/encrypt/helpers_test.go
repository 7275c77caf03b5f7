package encrypt

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// compressible returns n bytes of text that compresses well, like a dump.
func compressible(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "INSERT INTO accounts VALUES (%d, 'user-%d', 'user%d@example.com', %d);\n", i, i%977, i%977, i*7%10007)
	}
	return b.Bytes()[:n]
}

// writeIrregular writes data through w in pieces of varied sizes, from one
// byte to several MiB, and closes w.
func writeIrregular(t testing.TB, w io.WriteCloser, data []byte) {
	t.Helper()
	sizes := []int{1, 7, 511, 513, 4096, 65537, 1 << 20, 3<<20 + 5}
	for i := 0; len(data) > 0; i++ {
		k := min(sizes[i%len(sizes)], len(data))
		n, err := w.Write(data[:k])
		if err != nil || n != k {
			t.Fatalf("write %d bytes: wrote %d, %v", k, n, err)
		}
		data = data[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// encryptAll encrypts data with enc into a buffer.
func encryptAll(t testing.TB, enc Encryption, data []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := enc.NewWriter(&out)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	writeIrregular(t, w, data)
	return out.Bytes()
}

// decryptAll reads everything NewReaderAs yields.
func decryptAll(t testing.TB, ciphertext []byte, name string, ids Identities) ([]byte, error) {
	t.Helper()
	r, err := NewReaderAs(bytes.NewReader(ciphertext), name, ids)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func mustContain(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error containing %q, got none", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// goKeyPair makes an Ed25519/Curve25519 OpenPGP key pair with the library
// (for tests that need no GnuPG) and returns the armored public and private
// key files.
func goKeyPair(t testing.TB) (pub, sec string) {
	t.Helper()
	e, err := openpgp.NewEntity("Go Test", "", "go@example", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var pb, sb bytes.Buffer
	aw, _ := armor.Encode(&pb, openpgp.PublicKeyType, nil)
	if err := e.Serialize(aw); err != nil {
		t.Fatal(err)
	}
	aw.Close()
	aw, _ = armor.Encode(&sb, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivate(aw, nil); err != nil {
		t.Fatal(err)
	}
	aw.Close()
	return writeFile(t, "pub.asc", pb.Bytes()), writeFile(t, "sec.asc", sb.Bytes())
}

// ageKeyPair generates an age identity and returns its recipient and an
// identity file.
func ageKeyPair(t testing.TB) (recipient, identityFile string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	file := "# created: by a test\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	return id.Recipient().String(), writeFile(t, "key.txt", []byte(file))
}

// gnupg drives the real gpg binary in a throwaway home directory.
type gnupg struct {
	t    testing.TB
	home string
}

func newGnuPG(t testing.TB) *gnupg {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatalf("the gpg binary is needed (Debian package gnupg, installed by scripts/install-deps.sh): %v", err)
	}
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	g := &gnupg{t: t, home: home}
	t.Cleanup(func() {
		// Stop the agent gpg started for this home, then remove it.
		kill := exec.Command("gpgconf", "--kill", "all")
		kill.Env = append(os.Environ(), "GNUPGHOME="+home)
		_ = kill.Run()
		os.RemoveAll(home)
	})
	return g
}

// run runs gpg with args and returns its standard output.
func (g *gnupg) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	out, err := g.try(stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (g *gnupg) try(stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command("gpg", append([]string{"--batch", "--no-tty", "--pinentry-mode", "loopback"}, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.home, "LC_ALL=C")
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// genKey makes a key with gpg --quick-gen-key and returns its fingerprint.
func (g *gnupg) genKey(uid, passphrase, algo, usage, expire string, extra ...string) string {
	g.t.Helper()
	args := append(extra, "--passphrase", passphrase, "--quick-gen-key", uid, algo, usage, expire)
	g.run(nil, args...)
	return g.fingerprint(uid)
}

func (g *gnupg) fingerprint(uid string) string {
	g.t.Helper()
	for _, line := range strings.Split(string(g.run(nil, "--with-colons", "--list-keys", uid)), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" && len(f) > 9 {
			return f[9]
		}
	}
	g.t.Fatalf("no fingerprint for %q", uid)
	return ""
}

// exportPublic writes the public key of fpr to a file.
func (g *gnupg) exportPublic(fpr string, armored bool) string {
	g.t.Helper()
	args := []string{"--export"}
	if armored {
		args = append(args, "--armor")
	}
	return writeFile(g.t, fpr+".pub", g.run(nil, append(args, fpr)...))
}

// exportSecret writes the armored private key of fpr to a file.
func (g *gnupg) exportSecret(fpr, passphrase string) string {
	g.t.Helper()
	return writeFile(g.t, fpr+".sec", g.run(nil, "--passphrase", passphrase, "--armor", "--export-secret-keys", fpr))
}
