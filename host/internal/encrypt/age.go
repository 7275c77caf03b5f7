package encrypt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	"filippo.io/age"
)

// SplitAgeRecipients splits an AGE_RECIPIENTS value: age public keys
// separated by commas and/or white space.
func SplitAgeRecipients(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

// ReadAgeRecipientsFile reads an age recipients file (AGE_RECIPIENTS_FILE):
// one public key a line; empty lines and lines starting with "#" are
// ignored. Each key is checked; errors name the line.
func ReadAgeRecipientsFile(path string) ([]string, error) {
	data, err := readKeyFile(path, "age recipients")
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxKeyFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, err := parseAgeRecipient(line); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no age recipient (one age1... public key a line)", path)
	}
	return out, nil
}

// ParseAgeRecipients parses age public keys: native X25519 ("age1...") and
// post-quantum hybrid ("age1pq1...") ones. Errors say which entry is wrong
// and never echo anything that might be a secret key.
func ParseAgeRecipients(keys []string) ([]age.Recipient, error) {
	if len(keys) == 0 {
		return nil, errors.New("no age recipient given")
	}
	out := make([]age.Recipient, 0, len(keys))
	for i, k := range keys {
		r, err := parseAgeRecipient(strings.TrimSpace(k))
		if err != nil {
			if len(keys) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("recipient %d of %d: %w", i+1, len(keys), err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseAgeRecipient(s string) (age.Recipient, error) {
	switch {
	case s == "":
		return nil, errors.New("empty age recipient")
	case strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-"):
		return nil, errors.New("this is an age SECRET key (identity), not a recipient: give its public key instead (age-keygen -y), and keep the secret key off the backup host")
	case strings.HasPrefix(s, "ssh-"), strings.HasPrefix(s, "ecdsa-"), strings.HasPrefix(s, "sk-"):
		return nil, errors.New("SSH public keys are not supported as age recipients: use a native age1... key (age-keygen)")
	case strings.HasPrefix(s, "age1pq1"):
		r, err := age.ParseHybridRecipient(s)
		if err != nil {
			return nil, fmt.Errorf("invalid age post-quantum recipient %q: %v", s, err)
		}
		return r, nil
	case strings.HasPrefix(strings.ToLower(s), "age1"):
		if hrp := s[:strings.LastIndexByte(s, '1')]; !strings.EqualFold(hrp, "age") {
			return nil, fmt.Errorf("age plugin recipients (%s1...) are not supported: use a native age1... key (age-keygen)", hrp)
		}
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, fmt.Errorf("invalid age recipient %q: %v", s, err)
		}
		return r, nil
	}
	return nil, errors.New("not an age public key: age recipients start with \"age1\" (see age-keygen -y)")
}

// AgeEncryption encrypts to the given age public keys (duplicates are
// ignored). Post-quantum and classic recipients cannot be mixed.
func AgeEncryption(keys []string) (Encryption, error) {
	var uniq []string
	seen := map[string]bool{}
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if k != "" && !seen[k] {
			seen[k] = true
			uniq = append(uniq, k)
		}
	}
	recips, err := ParseAgeRecipients(uniq)
	if err != nil {
		return Encryption{}, err
	}
	// age refuses some combinations only when encrypting; find out now.
	w, err := age.Encrypt(io.Discard, recips...)
	if err != nil {
		return Encryption{}, fmt.Errorf("age recipients: %w", err)
	}
	if err := w.Close(); err != nil {
		return Encryption{}, fmt.Errorf("age recipients: %w", err)
	}
	return Encryption{name: Age, age: recips, recipients: uniq}, nil
}

func newAgeWriter(w io.Writer, recips []age.Recipient) (io.WriteCloser, error) {
	if len(recips) == 0 {
		return nil, errors.New("age encryption without a recipient")
	}
	aw, err := age.Encrypt(w, recips...)
	if err != nil {
		return nil, fmt.Errorf("starting age encryption: %w", err)
	}
	return &streamWriter{w: aw}, nil
}

// LoadAgeIdentities reads an age identity file: AGE-SECRET-KEY-1... (or
// AGE-SECRET-KEY-PQ-1...) lines, "#" comments and empty lines, as
// age-keygen writes it.
func LoadAgeIdentities(path string) (Identities, error) {
	data, err := readKeyFile(path, "age identity")
	if err != nil {
		return Identities{}, err
	}
	if _, _, perr := openPGPKeyData(data); perr == nil {
		return Identities{}, fmt.Errorf("%s is an OpenPGP key, not an age identity file: give it as the GPG private key", path)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		// age's errors name the line and never the key.
		return Identities{}, fmt.Errorf("%s is not a valid age identity file: %v", path, err)
	}
	return Identities{age: ids, agePath: path}, nil
}

func newAgeReader(r io.Reader, ids Identities) (io.Reader, error) {
	if len(ids.age) == 0 {
		return nil, errors.New("the backup is age-encrypted, but no age identity was given")
	}
	pr, err := age.Decrypt(r, ids.age...)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return nil, fmt.Errorf("none of the age identities in %s can decrypt this backup: it was encrypted to other recipients", ids.agePath)
		}
		return nil, fmt.Errorf("age decryption: %w", err)
	}
	return &errPrefixReader{r: pr, prefix: "age decryption"}, nil
}
