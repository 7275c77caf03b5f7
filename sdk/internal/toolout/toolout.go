// Package toolout holds what local tool runs (toolexec) and exec'd runs
// (sdk.Exec) both do with a tool's output: keep a bounded copy of stderr,
// scrub secrets from it, and name the tool.
package toolout

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// BaseName is the last element of a slash-separated program path.
func BaseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Scrub replaces every secret in s with "***". Longer secrets go first, so
// a secret that contains another is not left half-scrubbed; secrets shorter
// than 3 bytes are left alone (they would garble the text).
func Scrub(s string, secrets []string) string {
	secrets = slices.Clone(secrets)
	slices.SortStableFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, sec := range secrets {
		if len(sec) >= 3 {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

// Bounded keeps the first and last limit/2 bytes written to it. It is safe
// for concurrent use.
type Bounded struct {
	mu      sync.Mutex
	half    int
	head    []byte
	tail    []byte
	dropped int64
}

// NewBounded returns a Bounded keeping at most about limit bytes.
func NewBounded(limit int) *Bounded {
	return &Bounded{half: limit / 2}
}

func (b *Bounded) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if room := b.half - len(b.head); room > 0 {
		k := min(room, len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	if len(p) > 0 {
		b.tail = append(b.tail, p...)
		if over := len(b.tail) - b.half; over > 0 {
			b.dropped += int64(over)
			b.tail = append(b.tail[:0], b.tail[over:]...)
		}
	}
	return n, nil
}

func (b *Bounded) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped == 0 {
		return string(b.head) + string(b.tail)
	}
	return fmt.Sprintf("%s\n[... %d bytes of stderr omitted ...]\n%s", b.head, b.dropped, b.tail)
}
