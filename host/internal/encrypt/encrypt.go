// Package encrypt wraps a backup stream in public-key encryption: OpenPGP
// (a GPG public key, decryptable with "gpg --decrypt") or age (age1...
// recipients, decryptable with "age --decrypt"). It is applied after
// compression, so the stored bytes are the encrypted compressed dump and
// their checksum covers exactly what is stored.
//
// Encryption streams in constant memory whatever the size of the backup or of
// the writes. Only public keys live on the backup host; decryption (the
// restore side) takes the private keys separately.
package encrypt

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
)

// Names of the encryptions, as recorded in the metadata's "encryption" field.
const (
	None = "none"
	GPG  = "gpg"
	Age  = "age"
)

// Environment variables that configure encryption.
const (
	EnvGPGPublicKeyPath  = "GPG_PUBLIC_KEY_PATH"
	EnvAgeRecipients     = "AGE_RECIPIENTS"
	EnvAgeRecipientsFile = "AGE_RECIPIENTS_FILE"
)

// Encryption is the chosen encryption with its recipients. The zero value is
// "none": a passthrough.
type Encryption struct {
	name       string
	gpg        []*openpgp.Entity
	age        []age.Recipient
	recipients []string
}

// Name is "gpg", "age" or "none", as recorded in the metadata.
func (e Encryption) Name() string {
	if e.name == "" {
		return None
	}
	return e.name
}

// Enabled reports whether the stream is encrypted at all.
func (e Encryption) Enabled() bool { return e.Name() != None }

// Extension is the file extension encryption adds after the compression's:
// ".gpg", ".age", or "" for none.
func (e Encryption) Extension() string { return Extension(e.Name()) }

// Extension is the file extension of an encryption name.
func Extension(name string) string {
	switch name {
	case GPG:
		return ".gpg"
	case Age:
		return ".age"
	}
	return ""
}

// ContentType is the MIME type of the stored object, given the type of the
// plaintext stream (the compression's content type).
func (e Encryption) ContentType(plain string) string {
	if e.Enabled() {
		return "application/octet-stream"
	}
	return plain
}

// Recipients identifies who can decrypt: the fingerprints of the GPG keys,
// or the age public keys. Nil for none. Safe to log and to record.
func (e Encryption) Recipients() []string { return slices.Clone(e.recipients) }

// String describes the encryption for logs, e.g.
// "gpg to 0123…ABCD (Backup <ops@example.com>)".
func (e Encryption) String() string {
	switch e.Name() {
	case GPG:
		parts := make([]string, len(e.gpg))
		for i, ent := range e.gpg {
			parts[i] = describeEntity(ent)
		}
		return "gpg to " + strings.Join(parts, ", ")
	case Age:
		return "age to " + strings.Join(e.recipients, ", ")
	}
	return None
}

// Check re-validates the recipients now: a GPG key valid at start-up may
// have expired since. NewWriter checks the same on every backup.
func (e Encryption) Check() error {
	now := time.Now()
	for _, ent := range e.gpg {
		if err := checkEncryptable(ent, now); err != nil {
			return err
		}
	}
	return nil
}

// Expiry is when the first GPG key (or its encryption subkey) expires; the
// zero time if never (always for age and none).
func (e Encryption) Expiry() time.Time {
	var first time.Time
	for _, ent := range e.gpg {
		if t := entityExpiry(ent, time.Now()); !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// NewWriter returns a writer that encrypts into w. Close finishes the
// encrypted stream (it must be called for the output to be complete) but
// does not close w. Write errors from w are returned unchanged.
func (e Encryption) NewWriter(w io.Writer) (io.WriteCloser, error) {
	switch e.Name() {
	case GPG:
		return newGPGWriter(w, e.gpg)
	case Age:
		return newAgeWriter(w, e.age)
	case None:
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown encryption %q", e.name)
}

// New chooses the encryption from its inputs: a GPG public key file, or age
// recipients (age1... public keys). Both set is an error; neither is "none".
func New(gpgKeyPath string, ageRecipients []string) (Encryption, error) {
	gpgKeyPath = strings.TrimSpace(gpgKeyPath)
	switch {
	case gpgKeyPath != "" && len(ageRecipients) > 0:
		return Encryption{}, errors.New("both a GPG public key and age recipients are given: choose one encryption")
	case gpgKeyPath != "":
		key, err := LoadGPGPublicKey(gpgKeyPath)
		if err != nil {
			return Encryption{}, err
		}
		return GPGEncryption(key), nil
	case len(ageRecipients) > 0:
		return AgeEncryption(ageRecipients)
	}
	return Encryption{}, nil
}

// Settings are the agent's encryption variables, as read from the
// environment: GPG_PUBLIC_KEY_PATH, AGE_RECIPIENTS and AGE_RECIPIENTS_FILE.
type Settings struct {
	GPGPublicKeyPath  string
	AgeRecipients     string
	AgeRecipientsFile string
}

// Load validates the settings and returns the encryption they choose. Its
// errors name the variable at fault. AGE_RECIPIENTS and AGE_RECIPIENTS_FILE
// may be combined; either with GPG_PUBLIC_KEY_PATH is an error.
func (s Settings) Load() (Encryption, error) {
	gpgPath := strings.TrimSpace(s.GPGPublicKeyPath)
	ageList := SplitAgeRecipients(s.AgeRecipients)
	ageFile := strings.TrimSpace(s.AgeRecipientsFile)
	if gpgPath != "" && (len(ageList) > 0 || ageFile != "") {
		other := EnvAgeRecipientsFile
		if len(ageList) > 0 {
			other = EnvAgeRecipients
		}
		return Encryption{}, fmt.Errorf("%s and %s are both set: choose one encryption, GPG or age", EnvGPGPublicKeyPath, other)
	}
	if gpgPath != "" {
		key, err := LoadGPGPublicKey(gpgPath)
		if err != nil {
			return Encryption{}, fmt.Errorf("%s: %w", EnvGPGPublicKeyPath, err)
		}
		return GPGEncryption(key), nil
	}
	if len(ageList) > 0 {
		if _, err := ParseAgeRecipients(ageList); err != nil {
			return Encryption{}, fmt.Errorf("%s: %w", EnvAgeRecipients, err)
		}
	}
	if ageFile != "" {
		fromFile, err := ReadAgeRecipientsFile(ageFile)
		if err != nil {
			return Encryption{}, fmt.Errorf("%s: %w", EnvAgeRecipientsFile, err)
		}
		ageList = append(ageList, fromFile...)
	}
	if len(ageList) == 0 {
		return Encryption{}, nil
	}
	enc, err := AgeEncryption(ageList)
	if err != nil {
		vars := EnvAgeRecipients
		if ageFile != "" {
			vars = EnvAgeRecipientsFile
			if strings.TrimSpace(s.AgeRecipients) != "" {
				vars = EnvAgeRecipients + " and " + EnvAgeRecipientsFile
			}
		}
		return Encryption{}, fmt.Errorf("%s: %w", vars, err)
	}
	return enc, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// maxWrite bounds what one Write hands to the encryption library: the
// OpenPGP packet writer buffers a whole Write before framing it, so an
// unbounded Write would mean unbounded memory.
const maxWrite = 64 << 10

var errClosed = errors.New("write to a closed encrypting writer")

// streamWriter feeds an encryption stream in bounded pieces and makes its
// first error sticky: after a failed write the stream is unusable.
type streamWriter struct {
	w      io.WriteCloser
	err    error
	closed bool
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, errClosed
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), maxWrite)
		m, err := s.w.Write(p[:k])
		n += m
		if err == nil && m < k {
			err = io.ErrShortWrite
		}
		if err != nil {
			s.err = err
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// Close finishes the stream once; later calls return nil.
func (s *streamWriter) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.err != nil {
		return s.err
	}
	if err := s.w.Close(); err != nil {
		s.err = err
		return err
	}
	return nil
}
