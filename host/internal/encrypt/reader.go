package encrypt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	agearmor "filippo.io/age/armor"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// Identities are the private keys a restore decrypts with: a GPG private
// key file, an age identity file, or both.
type Identities struct {
	gpg     openpgp.EntityList
	gpgPath string
	age     []age.Identity
	agePath string
}

// LoadIdentities loads whichever of a GPG private key file (unlocked with
// gpgPassphrase if protected) and an age identity file are given (non-empty
// paths).
func LoadIdentities(gpgPrivateKeyPath string, gpgPassphrase []byte, ageIdentityPath string) (Identities, error) {
	var ids Identities
	if strings.TrimSpace(gpgPrivateKeyPath) != "" {
		g, err := LoadGPGPrivateKey(gpgPrivateKeyPath, gpgPassphrase)
		if err != nil {
			return Identities{}, err
		}
		ids.gpg, ids.gpgPath = g.gpg, g.gpgPath
	}
	if strings.TrimSpace(ageIdentityPath) != "" {
		a, err := LoadAgeIdentities(ageIdentityPath)
		if err != nil {
			return Identities{}, err
		}
		ids.age, ids.agePath = a.age, a.agePath
	}
	return ids, nil
}

// Empty reports whether no key was loaded.
func (i Identities) Empty() bool { return len(i.gpg) == 0 && len(i.age) == 0 }

// Detect names the encryption of a stream from its first bytes (64 are
// plenty): "age" for an age file (binary or armored), "gpg" for an OpenPGP
// message that starts with an encrypted session key (binary or armored),
// "none" otherwise.
func Detect(head []byte) string {
	h := bytes.TrimLeft(head, " \t\r\n")
	switch {
	case bytes.HasPrefix(head, []byte(ageMagic)), bytes.HasPrefix(h, []byte(agearmor.Header)):
		return Age
	case bytes.HasPrefix(h, []byte("-----BEGIN PGP MESSAGE-----")):
		return GPG
	case len(head) > 0 && head[0]&0x80 != 0:
		// A public-key (1) or passphrase (3) encrypted session key packet.
		if tag := packetTag(head[0]); tag == 1 || tag == 3 {
			return GPG
		}
	}
	return None
}

const ageMagic = "age-encryption.org/v1\n"

// sniffSize is how much of a stream Detect is shown: enough for armor
// headers after some white space.
const sniffSize = 64

// NewReader decrypts r, detecting its encryption from its first bytes (see
// Detect). An unencrypted stream is returned as is. The returned reader
// fails, rather than reaching EOF, if the data was altered or truncated:
// read it to the end before trusting what was read.
func NewReader(r io.Reader, ids Identities) (io.Reader, error) {
	return NewReaderAs(r, "", ids)
}

// NewReaderAs decrypts r whose encryption is name, as the metadata's
// "encryption" field records it ("gpg", "age" or "none"); an empty name
// means detect it. When the data does not look like what name says, it is
// an error rather than garbage.
func NewReaderAs(r io.Reader, name string, ids Identities) (io.Reader, error) {
	if name == None {
		return r, nil
	}
	br := bufio.NewReaderSize(r, 4096)
	head, err := br.Peek(sniffSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the backup: %w", err)
	}
	detected := Detect(head)
	switch name {
	case "":
		name = detected
	case GPG, Age:
		if detected != name {
			if detected == None {
				return nil, fmt.Errorf("the backup should be %s-encrypted but does not look encrypted at all", name)
			}
			return nil, fmt.Errorf("the backup should be %s-encrypted but looks %s-encrypted", name, detected)
		}
	default:
		return nil, fmt.Errorf("unknown encryption %q (expected gpg, age or none)", name)
	}
	switch name {
	case GPG:
		var in io.Reader = br
		if bytes.HasPrefix(bytes.TrimLeft(head, " \t\r\n"), []byte("-----BEGIN PGP")) {
			block, err := armor.Decode(br)
			if err != nil {
				return nil, fmt.Errorf("gpg decryption: bad ASCII armor: %w", err)
			}
			in = block.Body
		}
		return newGPGReader(in, ids)
	case Age:
		var in io.Reader = br
		if !bytes.HasPrefix(head, []byte(ageMagic)) {
			in = agearmor.NewReader(br)
		}
		return newAgeReader(in, ids)
	}
	return br, nil
}
