package s3

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/labelbackup/label-backup/sdk"
)

// maxKeyLen is S3's limit on key length, in bytes.
const maxKeyLen = 1024

// checkKey enforces the SDK's key rules, a little stricter: a non-empty,
// relative, clean, slash-separated path of valid UTF-8 without empty, "."
// or ".." segments, backslashes or control characters. S3 itself would
// accept almost anything, but such keys would mean a different object on
// every other sink.
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("empty key: %w", sdk.ErrInvalidArgument)
	}
	if len(key) > maxKeyLen {
		return fmt.Errorf("key is longer than %d bytes: %w", maxKeyLen, sdk.ErrInvalidArgument)
	}
	if problem := pathProblem(key); problem != "" {
		return fmt.Errorf("key %q %s: %w", key, problem, sdk.ErrInvalidArgument)
	}
	return nil
}

// pathProblem says what makes p unusable as a key, or returns "".
func pathProblem(p string) string {
	switch {
	case !utf8.ValidString(p):
		return "is not valid UTF-8"
	case strings.HasPrefix(p, "/"):
		return "is absolute"
	case strings.HasSuffix(p, "/"):
		return "ends with a slash"
	case strings.ContainsRune(p, '\\'):
		return "contains a backslash"
	case strings.ContainsFunc(p, isControl):
		return "contains a NUL or control character"
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return "has an empty segment"
		case ".":
			return `has a "." segment`
		case "..":
			return `has a ".." segment`
		}
	}
	return ""
}

// checkPrefix accepts a list prefix: a plain string prefix whose part up
// to its last slash must be a valid key (so "app/" and "app/db-2025" are
// fine, "../" and "/abs" are not).
func checkPrefix(prefix string) error {
	if len(prefix) > maxKeyLen {
		return fmt.Errorf("list prefix is longer than %d bytes: %w", maxKeyLen, sdk.ErrInvalidArgument)
	}
	check := prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		check = prefix[:i]
		if problem := pathProblem(check); problem != "" {
			return fmt.Errorf("list prefix %q %s: %w", prefix, problem, sdk.ErrInvalidArgument)
		}
		check = prefix[i+1:]
	}
	if !utf8.ValidString(check) || strings.ContainsRune(check, '\\') || strings.ContainsFunc(check, isControl) {
		return fmt.Errorf("list prefix %q has a character no key can hold: %w", prefix, sdk.ErrInvalidArgument)
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
