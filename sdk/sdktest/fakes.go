package sdktest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/labelbackup/label-backup/sdk"
)

// MemorySink is an in-memory Sink that honours the whole contract: keys are
// validated, objects appear only after a verified upload, listing is lexical
// and paged. The zero value is not usable; call NewMemorySink.
type MemorySink struct {
	mu      sync.Mutex
	objects map[string]memObject
}

type memObject struct {
	data     []byte
	modified time.Time
}

// NewMemorySink returns an empty MemorySink.
func NewMemorySink() *MemorySink {
	return &MemorySink{objects: map[string]memObject{}}
}

// Info describes the fake.
func (m *MemorySink) Info() sdk.Info {
	return sdk.Info{
		Name: "memory", Version: "0.0.0", Kind: sdk.KindSink,
		Capabilities: []string{sdk.CapGet, sdk.CapList, sdk.CapStat, sdk.CapDelete},
	}
}

// CheckReady always succeeds.
func (m *MemorySink) CheckReady(context.Context) (string, error) { return "in memory", nil }

// Put buffers the whole upload and stores it once r reaches io.EOF.
func (m *MemorySink) Put(ctx context.Context, req sdk.PutRequest, r io.Reader) (sdk.ObjectInfo, error) {
	if err := ValidateKey(req.Key); err != nil {
		return sdk.ObjectInfo{}, err
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return sdk.ObjectInfo{}, fmt.Errorf("memory put %q: %w", req.Key, err)
	}
	if err := ctx.Err(); err != nil {
		return sdk.ObjectInfo{}, err
	}
	now := time.Now()
	m.mu.Lock()
	m.objects[req.Key] = memObject{data: buf.Bytes(), modified: now}
	m.mu.Unlock()
	sum := sha256.Sum256(buf.Bytes())
	return sdk.ObjectInfo{Key: req.Key, Size: int64(buf.Len()), Modified: now, URL: "memory://" + req.Key, SHA256: sum[:]}, nil
}

// Get writes the object to w.
func (m *MemorySink) Get(_ context.Context, key string, w io.Writer) error {
	obj, err := m.lookup(key)
	if err != nil {
		return err
	}
	_, err = w.Write(obj.data)
	return err
}

// Stat describes one object.
func (m *MemorySink) Stat(_ context.Context, key string) (sdk.ObjectInfo, error) {
	obj, err := m.lookup(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	return sdk.ObjectInfo{Key: key, Size: int64(len(obj.data)), Modified: obj.modified, URL: "memory://" + key}, nil
}

// Delete removes one object.
func (m *MemorySink) Delete(_ context.Context, key string) error {
	if _, err := m.lookup(key); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.objects, key)
	m.mu.Unlock()
	return nil
}

// List returns keys with the prefix in lexical order, PageSize at a time
// (default 1000). The page token is the last key of the previous page.
func (m *MemorySink) List(_ context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	size := req.PageSize
	if size <= 0 {
		size = 1000
	}
	m.mu.Lock()
	var keys []string
	for k := range m.objects {
		if strings.HasPrefix(k, req.Prefix) && k > req.PageToken {
			keys = append(keys, k)
		}
	}
	m.mu.Unlock()
	sort.Strings(keys)
	var page sdk.ListPage
	if len(keys) > size {
		keys = keys[:size]
		page.NextPageToken = keys[size-1]
	}
	for _, k := range keys {
		if info, err := m.Stat(context.Background(), k); err == nil {
			page.Objects = append(page.Objects, info)
		}
	}
	return page, nil
}

// Keys returns every stored key, sorted: handy in assertions.
func (m *MemorySink) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.objects))
	for k := range m.objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (m *MemorySink) lookup(key string) (memObject, error) {
	if err := ValidateKey(key); err != nil {
		return memObject{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	obj, ok := m.objects[key]
	if !ok {
		return memObject{}, fmt.Errorf("object %q: %w", key, sdk.ErrNotFound)
	}
	return obj, nil
}

// ValidateKey applies the key rules every sink must enforce: a non-empty,
// relative, clean, slash-separated path without "." or ".." segments.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("empty key: %w", sdk.ErrInvalidArgument)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("key %q is absolute: %w", key, sdk.ErrInvalidArgument)
	case strings.ContainsAny(key, "\\\x00"):
		return fmt.Errorf("key %q contains a backslash or NUL: %w", key, sdk.ErrInvalidArgument)
	case path.Clean(key) != key || key == "." || key == ".." || strings.HasPrefix(key, "../"):
		return fmt.Errorf("key %q is not a clean relative path: %w", key, sdk.ErrInvalidArgument)
	}
	return nil
}

// RandomDumper dumps Size bytes of deterministic pseudo-random data derived
// from Seed, in writes of WriteSize bytes (default 32 KiB, like a pipe). Err,
// when set, is returned after FailAfter bytes instead of finishing. A target
// whose connection contains "unreachable" fails with ErrUnavailable.
type RandomDumper struct {
	Size      int64
	Seed      uint64
	WriteSize int
	FailAfter int64
	Err       error
}

// Info describes the fake.
func (d *RandomDumper) Info() sdk.Info {
	return sdk.Info{Name: "random", Version: "0.0.0", Kind: sdk.KindDumper, DefaultExtension: ".bin"}
}

// Validate fails only for unreachable targets.
func (d *RandomDumper) Validate(_ context.Context, t sdk.Target) (sdk.ValidateResult, error) {
	if err := reachable(t); err != nil {
		return sdk.ValidateResult{}, err
	}
	return sdk.ValidateResult{ServerVersion: "random"}, nil
}

func reachable(t sdk.Target) error {
	if strings.Contains(t.Connection, "unreachable") {
		return fmt.Errorf("random target: %w", sdk.ErrUnavailable)
	}
	return nil
}

// Dump writes the stream, stopping when ctx is done.
func (d *RandomDumper) Dump(ctx context.Context, t sdk.Target, w io.Writer) (sdk.DumpResult, error) {
	if err := reachable(t); err != nil {
		return sdk.DumpResult{}, err
	}
	_, err := io.Copy(w, d.Reader(ctx))
	return sdk.DumpResult{Format: "random", Extension: ".bin"}, err
}

// Reader returns the same stream Dump writes.
func (d *RandomDumper) Reader(ctx context.Context) io.Reader {
	ws := d.WriteSize
	if ws <= 0 {
		ws = 32 << 10
	}
	return &randomReader{ctx: ctx, rng: rand.NewChaCha8(seed(d.Seed)), left: d.Size, chunk: ws, failAfter: d.FailAfter, err: d.Err, size: d.Size}
}

func seed(s uint64) [32]byte {
	var b [32]byte
	for i := range 4 {
		for j := range 8 {
			b[i*8+j] = byte(s >> (8 * j))
		}
	}
	return b
}

type randomReader struct {
	ctx       context.Context
	rng       *rand.ChaCha8
	left      int64
	size      int64
	chunk     int
	failAfter int64
	err       error
}

func (r *randomReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if r.err != nil && r.size-r.left >= r.failAfter {
		return 0, r.err
	}
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), int64(r.chunk), r.left)
	if r.err != nil {
		n = min(n, r.failAfter-(r.size-r.left))
	}
	r.rng.Read(p[:n])
	r.left -= n
	return int(n), nil
}
