package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

// newSink returns a sink configured over a fresh base directory, and that
// directory with symlinks resolved (what the sink reports in URLs).
func newSink(t *testing.T, settings map[string]string) (*Sink, string) {
	t.Helper()
	base := filepath.Join(t.TempDir(), "backups")
	all := map[string]string{"path": base, "min_free_bytes": "0"}
	for k, v := range settings {
		all[k] = v
	}
	s := New()
	if err := s.Configure(context.Background(), all); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	resolved, err := filepath.EvalSymlinks(all["path"])
	if err != nil {
		t.Fatal(err)
	}
	return s, resolved
}

func mustPut(t *testing.T, s *Sink, key, data string) sdk.ObjectInfo {
	t.Helper()
	obj, err := s.Put(context.Background(), sdk.PutRequest{Key: key}, strings.NewReader(data))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return obj
}

func mustGet(t *testing.T, s *Sink, key string) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.Get(context.Background(), key, &b); err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return b.String()
}

// listAll pages through a listing and returns its keys.
func listAll(t *testing.T, s *Sink, prefix string, pageSize int) []string {
	t.Helper()
	keys := []string{}
	token := ""
	for range 1000 {
		page, err := s.List(context.Background(), sdk.ListRequest{Prefix: prefix, PageToken: token, PageSize: pageSize})
		if err != nil {
			t.Fatalf("List(%q, %q): %v", prefix, token, err)
		}
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		if page.NextPageToken == "" {
			return keys
		}
		token = page.NextPageToken
	}
	t.Fatalf("List(%q) did not end", prefix)
	return nil
}

// files returns every non-directory entry under dir, relative and
// slash-separated, whatever its name: temporary files included.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// brokenReader yields data, then fails with err instead of io.EOF, like
// the SDK's reader does when an upload breaks or its trailer mismatches.
type brokenReader struct {
	data []byte
	err  error
}

func (r *brokenReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// cancellingReader cancels its context after the first read and then keeps
// delivering data, so only the sink's own ctx checks can stop the upload.
type cancellingReader struct {
	cancel context.CancelFunc
	reads  int
}

func (r *cancellingReader) Read(p []byte) (int, error) {
	r.reads++
	if r.reads == 1 {
		r.cancel()
	}
	if r.reads > 100 {
		return 0, io.EOF // the sink ignored the cancellation
	}
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one wrapping %q", what, err, target)
	}
}
