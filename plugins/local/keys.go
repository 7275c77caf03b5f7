package local

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/labelbackup/label-backup/sdk"
)

// Temporary files are named ".<name>.tmp-<16 hex digits>". Names of that
// exact shape are reserved: no key segment may take one, so an upload in
// progress can never be mistaken for (or collide with) an object, and the
// stale-file sweep can never delete one.
const (
	tempInfix     = ".tmp-"
	tempRandBytes = 8
	tempRandLen   = 2 * tempRandBytes
	// tempOverhead is what tempName adds to a name.
	tempOverhead = 1 + len(tempInfix) + tempRandLen
)

// Length limits. Most filesystems allow 255 bytes per name; the temporary
// file's name must fit too.
const (
	maxSegmentLen = 255 - tempOverhead
	maxKeyLen     = 1024
)

// tempName returns a fresh temporary file name for name.
func tempName(name string) string {
	var b [tempRandBytes]byte
	_, _ = rand.Read(b[:]) // never fails, per crypto/rand
	return "." + name + tempInfix + hex.EncodeToString(b[:])
}

// isTempName reports whether name has the shape tempName produces.
func isTempName(name string) bool {
	i := len(name) - tempRandLen - len(tempInfix)
	if i < 2 || name[0] != '.' || name[i:i+len(tempInfix)] != tempInfix {
		return false
	}
	for _, c := range []byte(name[i+len(tempInfix):]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// parseKey checks key against the confinement rules and returns its
// segments. Errors quote the key, never a filesystem path.
func parseKey(key string) ([]string, error) {
	if key == "" {
		return nil, fmt.Errorf("empty key: %w", sdk.ErrInvalidArgument)
	}
	if len(key) > maxKeyLen {
		return nil, fmt.Errorf("key is longer than %d bytes: %w", maxKeyLen, sdk.ErrInvalidArgument)
	}
	if problem := pathProblem(key); problem != "" {
		return nil, fmt.Errorf("key %q %s: %w", key, problem, sdk.ErrInvalidArgument)
	}
	return strings.Split(key, "/"), nil
}

// pathProblem says what makes p unusable as a relative slash-separated path
// below the base, or returns "" when it is fine. These are purely lexical
// checks; symlinks on disk are dealt with in walkDirs.
func pathProblem(p string) string {
	switch {
	case !utf8.ValidString(p):
		return "is not valid UTF-8"
	case strings.HasPrefix(p, "/"):
		return "is absolute"
	case strings.HasSuffix(p, "/"):
		return "ends with a slash"
	case strings.ContainsRune(p, '\\'):
		// A separator on Windows, and confusing everywhere else.
		return "contains a backslash"
	case strings.ContainsFunc(p, isControl):
		return "contains a NUL or control character"
	}
	for seg := range strings.SplitSeq(p, "/") {
		if problem := segmentProblem(seg); problem != "" {
			return problem
		}
	}
	return ""
}

// segmentProblem checks one path segment (a file or directory name).
func segmentProblem(seg string) string {
	switch {
	case seg == "":
		return "has an empty segment"
	case seg == ".":
		return `has a "." segment`
	case seg == "..":
		return `has a ".." segment`
	case len(seg) > maxSegmentLen:
		return fmt.Sprintf("has a segment longer than %d bytes", maxSegmentLen)
	case isTempName(seg):
		return "uses a name reserved for temporary files"
	}
	return ""
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
