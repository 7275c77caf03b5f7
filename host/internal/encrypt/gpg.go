package encrypt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// GPGKey is the OpenPGP public key (or keys: a file may hold several, and a
// backup is then encrypted to each) that backups are encrypted to.
type GPGKey struct {
	path     string
	entities []*openpgp.Entity
}

// Fingerprints are the keys' primary fingerprints, in upper-case hex.
func (k *GPGKey) Fingerprints() []string {
	out := make([]string, len(k.entities))
	for i, e := range k.entities {
		out[i] = fingerprint(e)
	}
	return out
}

// GPGEncryption encrypts to key.
func GPGEncryption(key *GPGKey) Encryption {
	return Encryption{name: GPG, gpg: key.entities, recipients: key.Fingerprints()}
}

// LoadGPGPublicKey reads an armored or binary OpenPGP public key file, as
// "gpg --export [--armor] KEYID" writes it, and checks that every key in it
// can be encrypted to now: not expired, not revoked, with an
// encryption-capable (sub)key. A file holding a private key is refused: the
// backup host needs only the public key.
func LoadGPGPublicKey(path string) (*GPGKey, error) {
	data, err := readKeyFile(path, "GPG public key")
	if err != nil {
		return nil, err
	}
	body, kind, err := openPGPKeyData(data)
	if err != nil {
		return nil, fmt.Errorf("%s is not an OpenPGP public key (%v): expected the output of gpg --export --armor KEYID", path, err)
	}
	if kind == packetSecretKey {
		return nil, fmt.Errorf("%s holds a private (secret) key: give the agent only the public key (gpg --export --armor KEYID); the private key belongs with whoever restores", path)
	}
	ents, err := openpgp.ReadKeyRing(body)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read the OpenPGP public key: %v", path, err)
	}
	if len(ents) == 0 {
		return nil, fmt.Errorf("%s holds no OpenPGP public key", path)
	}
	now := time.Now()
	for _, e := range ents {
		if e.PrivateKey != nil {
			return nil, fmt.Errorf("%s holds a private (secret) key: give the agent only the public key (gpg --export --armor KEYID)", path)
		}
		if err := checkEncryptable(e, now); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return &GPGKey{path: path, entities: ents}, nil
}

// checkEncryptable says, in words, why e cannot be encrypted to at now.
func checkEncryptable(e *openpgp.Entity, now time.Time) error {
	if _, ok := e.EncryptionKey(now); ok {
		return nil
	}
	name := describeEntity(e)
	sig, ident := e.PrimarySelfSignature()
	switch {
	case sig == nil:
		return fmt.Errorf("key %s has no valid self-signature (no user ID?): it cannot be used", name)
	case e.Revoked(now):
		return fmt.Errorf("key %s is revoked", name)
	case e.PrimaryKey.CreationTime.After(now):
		return fmt.Errorf("key %s was created in the future (%s): check the clock", name, day(e.PrimaryKey.CreationTime))
	case e.PrimaryKey.KeyExpired(sig, now):
		return fmt.Errorf("key %s expired on %s (extend it with gpg --quick-set-expire, then export it again)",
			name, day(lifetimeEnd(e.PrimaryKey.CreationTime, sig.KeyLifetimeSecs)))
	case sig.SigExpired(now):
		return fmt.Errorf("key %s: its self-signature expired on %s", name, day(lifetimeEnd(sig.CreationTime, sig.SigLifetimeSecs)))
	case ident != nil && ident.Revoked(now):
		return fmt.Errorf("key %s: its user ID is revoked", name)
	}
	var encSubkeys int
	var lastExpiry time.Time
	revoked := false
	for _, sk := range e.Subkeys {
		if sk.Sig == nil || !sk.Sig.FlagsValid || !(sk.Sig.FlagEncryptCommunications || sk.Sig.FlagEncryptStorage) {
			continue
		}
		encSubkeys++
		if sk.Revoked(now) {
			revoked = true
		}
		if sk.PublicKey.KeyExpired(sk.Sig, now) {
			if t := lifetimeEnd(sk.PublicKey.CreationTime, sk.Sig.KeyLifetimeSecs); t.After(lastExpiry) {
				lastExpiry = t
			}
		}
	}
	switch {
	case encSubkeys == 0:
		return fmt.Errorf("key %s has no encryption subkey: it can only sign; add one with: gpg --quick-add-key %s cv25519 encr",
			name, fingerprint(e))
	case !lastExpiry.IsZero():
		return fmt.Errorf("key %s: its encryption subkey expired on %s (extend it with gpg --quick-set-expire %s <date> '*', then export it again)",
			name, day(lastExpiry), fingerprint(e))
	case revoked:
		return fmt.Errorf("key %s: its encryption subkey is revoked", name)
	}
	return fmt.Errorf("key %s has no usable encryption subkey (unsupported algorithm or flags)", name)
}

// entityExpiry is when e stops being usable for encryption: the earlier of
// its primary key's and its encryption subkey's expiry; zero if never.
func entityExpiry(e *openpgp.Entity, now time.Time) time.Time {
	var t time.Time
	if sig, _ := e.PrimarySelfSignature(); sig != nil {
		t = lifetimeEnd(e.PrimaryKey.CreationTime, sig.KeyLifetimeSecs)
	}
	if k, ok := e.EncryptionKey(now); ok && k.PublicKey != e.PrimaryKey && k.SelfSignature != nil {
		if st := lifetimeEnd(k.PublicKey.CreationTime, k.SelfSignature.KeyLifetimeSecs); !st.IsZero() && (t.IsZero() || st.Before(t)) {
			t = st
		}
	}
	return t
}

func lifetimeEnd(created time.Time, secs *uint32) time.Time {
	if secs == nil || *secs == 0 {
		return time.Time{}
	}
	return created.Add(time.Duration(*secs) * time.Second)
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func fingerprint(e *openpgp.Entity) string { return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint) }

// describeEntity is "FINGERPRINT (user ID)".
func describeEntity(e *openpgp.Entity) string {
	s := fingerprint(e)
	if id := e.PrimaryIdentity(); id != nil && id.Name != "" {
		s += " (" + id.Name + ")"
	}
	return s
}

func newGPGWriter(w io.Writer, ents []*openpgp.Entity) (io.WriteCloser, error) {
	if len(ents) == 0 {
		return nil, errors.New("gpg encryption without a key")
	}
	now := time.Now()
	for _, e := range ents {
		if err := checkEncryptable(e, now); err != nil {
			return nil, fmt.Errorf("gpg encryption: %w", err)
		}
	}
	cfg := &packet.Config{
		DefaultCipher: packet.CipherAES256,
		// The data is compressed already; compressing again costs time
		// for nothing (and would hide the size from no one).
		DefaultCompressionAlgo: packet.CompressionNone,
		Time:                   func() time.Time { return now },
		// AEADConfig stays nil: a version 1 SEIPD packet with MDC, which
		// every GnuPG 2.x decrypts.
	}
	pt, err := openpgp.Encrypt(w, ents, nil, &openpgp.FileHints{IsBinary: true}, cfg)
	if err != nil {
		return nil, fmt.Errorf("starting gpg encryption: %w", err)
	}
	return &streamWriter{w: pt}, nil
}

// ErrPassphraseRequired is returned when a private key is protected and no
// passphrase was given.
var ErrPassphraseRequired = errors.New("the private key is protected by a passphrase, and none was given")

// LoadGPGPrivateKey reads an armored or binary OpenPGP private key file, as
// "gpg --export-secret-keys [--armor] KEYID" writes it, unlocking it with
// passphrase when it is protected.
func LoadGPGPrivateKey(path string, passphrase []byte) (Identities, error) {
	data, err := readKeyFile(path, "GPG private key")
	if err != nil {
		return Identities{}, err
	}
	body, kind, err := openPGPKeyData(data)
	if err != nil {
		return Identities{}, fmt.Errorf("%s is not an OpenPGP private key (%v): expected the output of gpg --export-secret-keys --armor KEYID", path, err)
	}
	if kind != packetSecretKey {
		return Identities{}, fmt.Errorf("%s holds only a public key: decrypting needs the private key (gpg --export-secret-keys --armor KEYID)", path)
	}
	ents, err := openpgp.ReadKeyRing(body)
	if err != nil {
		return Identities{}, fmt.Errorf("%s: cannot read the OpenPGP private key: %v", path, err)
	}
	usable := 0
	for _, e := range ents {
		locked := false
		for _, k := range privateKeys(e) {
			usable++
			locked = locked || k.Encrypted
		}
		if !locked {
			continue
		}
		if len(passphrase) == 0 {
			return Identities{}, fmt.Errorf("%s: key %s: %w", path, describeEntity(e), ErrPassphraseRequired)
		}
		if err := e.DecryptPrivateKeys(passphrase); err != nil {
			return Identities{}, fmt.Errorf("%s: cannot unlock key %s: wrong passphrase? (%v)", path, describeEntity(e), err)
		}
	}
	if usable == 0 {
		return Identities{}, fmt.Errorf("%s holds no usable private key (only stubs: is the secret key on a smartcard?)", path)
	}
	return Identities{gpg: ents, gpgPath: path}, nil
}

// privateKeys are e's real (not stub) private keys.
func privateKeys(e *openpgp.Entity) []*packet.PrivateKey {
	var out []*packet.PrivateKey
	if e.PrivateKey != nil && !e.PrivateKey.Dummy() {
		out = append(out, e.PrivateKey)
	}
	for _, sk := range e.Subkeys {
		if sk.PrivateKey != nil && !sk.PrivateKey.Dummy() {
			out = append(out, sk.PrivateKey)
		}
	}
	return out
}

// newGPGReader decrypts an OpenPGP message with ids' private keys. The
// returned reader fails at the end if the message's integrity check fails.
func newGPGReader(r io.Reader, ids Identities) (io.Reader, error) {
	if len(ids.gpg) == 0 {
		return nil, errors.New("the backup is GPG-encrypted, but no GPG private key was given")
	}
	// Keep the start of the stream to name the key(s) it was encrypted to
	// if none of ours fits.
	head := &headRecorder{r: r, max: 64 << 10}
	md, err := openpgp.ReadMessage(head, ids.gpg, nil, &packet.Config{})
	if err != nil {
		if errors.Is(err, pgperrors.ErrKeyIncorrect) {
			return nil, fmt.Errorf("none of the GPG private keys in %s can decrypt this backup: it is encrypted to key ID(s) %s, the file holds %s",
				ids.gpgPath, strings.Join(messageKeyIDs(head.buf.Bytes()), ", "), strings.Join(keyIDs(ids.gpg), ", "))
		}
		return nil, fmt.Errorf("gpg decryption: %w", err)
	}
	head.stop()
	if !md.IsEncrypted {
		return nil, errors.New("gpg decryption: the OpenPGP message is not encrypted")
	}
	return &errPrefixReader{r: md.UnverifiedBody, prefix: "gpg decryption"}, nil
}

// headRecorder keeps a copy of the first max bytes read through it.
type headRecorder struct {
	r   io.Reader
	buf bytes.Buffer
	max int
}

func (h *headRecorder) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if room := h.max - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(n, room)])
	}
	return n, err
}

func (h *headRecorder) stop() { h.max = 0; h.buf = bytes.Buffer{} }

// messageKeyIDs lists the key IDs of the public-key-encrypted session key
// packets at the start of an OpenPGP message.
func messageKeyIDs(head []byte) []string {
	var ids []string
	packets := packet.NewReader(bytes.NewReader(head))
	for {
		p, err := packets.Next()
		if err != nil {
			break
		}
		ek, ok := p.(*packet.EncryptedKey)
		if !ok {
			break
		}
		if ek.KeyId == 0 {
			ids = append(ids, "(hidden)")
		} else {
			ids = append(ids, fmt.Sprintf("%016X", ek.KeyId))
		}
	}
	if len(ids) == 0 {
		return []string{"(none: not encrypted to a public key)"}
	}
	return ids
}

// keyIDs lists the key IDs of the private keys in ents.
func keyIDs(ents openpgp.EntityList) []string {
	var ids []string
	for _, e := range ents {
		for _, k := range privateKeys(e) {
			ids = append(ids, fmt.Sprintf("%016X", k.KeyId))
		}
	}
	return ids
}

// errPrefixReader says which layer a read error comes from.
type errPrefixReader struct {
	r      io.Reader
	prefix string
}

func (e *errPrefixReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", e.prefix, err)
	}
	return n, err
}

// OpenPGP packet tags a key file may start with.
const (
	packetSecretKey = 5
	packetPublicKey = 6
)

// openPGPKeyData returns the binary packets of an armored or binary key file
// and whether it is a public or a secret key.
func openPGPKeyData(data []byte) (io.Reader, int, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN PGP ")) {
		block, err := armor.Decode(bytes.NewReader(trimmed))
		if err != nil {
			return nil, 0, fmt.Errorf("bad ASCII armor: %v", err)
		}
		switch block.Type {
		case openpgp.PublicKeyType:
			return block.Body, packetPublicKey, nil
		case openpgp.PrivateKeyType:
			return block.Body, packetSecretKey, nil
		}
		return nil, 0, fmt.Errorf("it holds a %q block, not a key", block.Type)
	}
	switch {
	case bytes.HasPrefix(trimmed, []byte("age1")), bytes.HasPrefix(trimmed, []byte("AGE-SECRET-KEY-")), bytes.HasPrefix(trimmed, []byte("# created:")):
		return nil, 0, errors.New("it looks like an age key, not a GPG key")
	case len(data) == 0 || data[0]&0x80 == 0:
		return nil, 0, errors.New("neither ASCII-armored nor binary OpenPGP data")
	}
	switch tag := packetTag(data[0]); tag {
	case packetPublicKey, packetSecretKey:
		return bytes.NewReader(data), tag, nil
	default:
		return nil, 0, fmt.Errorf("binary OpenPGP data starting with a packet of type %d, not a key", tag)
	}
}

// packetTag decodes the tag of an OpenPGP packet header's first byte
// (bit 7 set): new format keeps it in bits 0-5, old format in bits 2-5.
func packetTag(b byte) int {
	if b&0x40 != 0 {
		return int(b & 0x3f)
	}
	return int(b>>2) & 0x0f
}

// maxKeyFile bounds what is read of a key or recipients file.
const maxKeyFile = 16 << 20

// readKeyFile reads a small key file, saying plainly what is wrong with it.
func readKeyFile(path, what string) ([]byte, error) {
	if strings.TrimSpace(path) == "" {
		return nil, fmt.Errorf("no %s file given", what)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s file %s does not exist", what, path)
		}
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("%s file %s is not readable by this process (permission denied)", what, path)
		}
		return nil, fmt.Errorf("opening %s file: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s file: %w", what, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a %s file", path, what)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s file %s: %w", what, path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s file %s is larger than %d MiB: not a key file", what, path, maxKeyFile>>20)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s file %s is empty", what, path)
	}
	return data, nil
}
