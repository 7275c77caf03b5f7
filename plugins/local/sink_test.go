package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/sdk"
)

func TestInfo(t *testing.T) {
	info := New().Info()
	if info.Name != "local" || info.Version != "0.1.0" || info.Kind != sdk.KindSink {
		t.Errorf("Info = %+v", info)
	}
	for _, c := range []string{sdk.CapGet, sdk.CapList, sdk.CapStat, sdk.CapDelete} {
		if !info.Has(c) {
			t.Errorf("Info lacks capability %q", c)
		}
	}
	opts := map[string]sdk.Option{}
	for _, o := range info.Options {
		opts[o.Name] = o
	}
	if !opts["path"].Required {
		t.Error(`option "path" is not required`)
	}
	if _, ok := opts["min_free_bytes"]; !ok || opts["min_free_bytes"].Required {
		t.Error(`option "min_free_bytes" missing or required`)
	}
}

func TestConfigure(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		settings map[string]string
		problem  string
	}{
		{"no path", map[string]string{}, "path is required"},
		{"empty path", map[string]string{"path": ""}, "path is required"},
		{"relative path", map[string]string{"path": "backups"}, "must be absolute"},
		{"path is a file", map[string]string{"path": file}, "not a directory"},
		{"negative min", map[string]string{"path": dir, "min_free_bytes": "-1"}, "min_free_bytes"},
		{"garbage min", map[string]string{"path": dir, "min_free_bytes": "64MiB"}, "min_free_bytes"},
		{"unknown setting", map[string]string{"path": dir, "min_free_byte": "1"}, `"min_free_byte"`},
	}
	for _, tt := range tests {
		err := New().Configure(context.Background(), tt.settings)
		if err == nil {
			t.Errorf("%s: Configure accepted %v", tt.name, tt.settings)
			continue
		}
		wantErr(t, tt.name, err, sdk.ErrInvalidArgument)
		if !strings.Contains(err.Error(), tt.problem) {
			t.Errorf("%s: error %q does not mention %q", tt.name, err, tt.problem)
		}
	}
}

func TestConfigureCreatesAndResolvesBase(t *testing.T) {
	parent := t.TempDir()
	real := filepath.Join(parent, "real", "nested")
	s := New()
	if err := s.Configure(context.Background(), map[string]string{"path": real + "/"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != dirPerm {
		t.Fatalf("base after Configure: %v, %v; want a directory with mode %o", fi, err, dirPerm)
	}

	// A symlinked base is resolved once: URLs name the real directory.
	link := filepath.Join(parent, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := s.Configure(context.Background(), map[string]string{"path": link, "min_free_bytes": "0"}); err != nil {
		t.Fatal(err)
	}
	obj := mustPut(t, s, "k", "v")
	resolved, _ := filepath.EvalSymlinks(real)
	if want := filepath.Join(resolved, "k"); obj.URL != want {
		t.Errorf("URL = %q, want %q", obj.URL, want)
	}
}

func TestNotConfigured(t *testing.T) {
	s := New()
	ctx := context.Background()
	_, err := s.Put(ctx, sdk.PutRequest{Key: "k"}, strings.NewReader("x"))
	wantErr(t, "put", err, sdk.ErrInvalidArgument)
	_, err = s.CheckReady(ctx)
	wantErr(t, "check ready", err, sdk.ErrInvalidArgument)
	_, err = s.List(ctx, sdk.ListRequest{})
	wantErr(t, "list", err, sdk.ErrInvalidArgument)
}

func TestRoundTrip(t *testing.T) {
	s, base := newSink(t, nil)
	ctx := context.Background()
	key := "app/2024/db.dump.gz"
	data := strings.Repeat("backup bytes ", 300_000) // several copy buffers

	before := time.Now().Add(-time.Second)
	obj := mustPut(t, s, key, data)
	// The sink leaves the digest to the SDK, which verified it on the wire.
	if obj.Key != key || obj.Size != int64(len(data)) || obj.SHA256 != nil {
		t.Errorf("Put = %+v", obj)
	}
	if want := filepath.Join(base, "app", "2024", "db.dump.gz"); obj.URL != want {
		t.Errorf("URL = %q, want %q", obj.URL, want)
	}
	if obj.Modified.Before(before) {
		t.Errorf("Modified = %v, before the put", obj.Modified)
	}
	if got := mustGet(t, s, key); got != data {
		t.Errorf("Get returned %d bytes, want %d", len(got), len(data))
	}
	st, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if st.Key != key || st.Size != obj.Size || !st.Modified.Equal(obj.Modified) || st.URL != obj.URL {
		t.Errorf("Stat = %+v, want it to match Put's %+v", st, obj)
	}
	page, err := s.List(ctx, sdk.ListRequest{Prefix: "app/"})
	if err != nil || len(page.Objects) != 1 || page.Objects[0].Key != key || page.Objects[0].Size != obj.Size {
		t.Errorf("List = %+v, %v", page, err)
	}

	// Putting again replaces the object.
	mustPut(t, s, key, "v2")
	if got := mustGet(t, s, key); got != "v2" {
		t.Errorf("after overwrite Get = %q", got)
	}

	mustPut(t, s, "app/keep", "k")
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "get deleted", s.Get(ctx, key, &bytes.Buffer{}), sdk.ErrNotFound)
	_, err = s.Stat(ctx, key)
	wantErr(t, "stat deleted", err, sdk.ErrNotFound)
	wantErr(t, "delete deleted", s.Delete(ctx, key), sdk.ErrNotFound)
	// Its emptied directory went; the one still holding an object stayed.
	if _, err := os.Stat(filepath.Join(base, "app", "2024")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty directory app/2024 left behind: %v", err)
	}
	if err := s.Delete(ctx, "app/keep"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(base, "app")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty directory app left behind: %v", err)
	}
	if _, err := os.Stat(base); err != nil {
		t.Errorf("base removed: %v", err)
	}
}

func TestMissingAndNonObjects(t *testing.T) {
	s, base := newSink(t, nil)
	ctx := context.Background()
	mustPut(t, s, "dir/obj", "x")
	if err := os.Mkdir(filepath.Join(base, "emptydir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"missing", "missing/deeper", "dir", "emptydir", "dir/obj/below"} {
		wantErr(t, "get "+key, s.Get(ctx, key, &bytes.Buffer{}), sdk.ErrNotFound)
		_, err := s.Stat(ctx, key)
		wantErr(t, "stat "+key, err, sdk.ErrNotFound)
		wantErr(t, "delete "+key, s.Delete(ctx, key), sdk.ErrNotFound)
	}
	// Keys whose path is taken by the other kind of entry cannot be put.
	for _, key := range []string{"dir", "dir/obj/below"} {
		_, err := s.Put(ctx, sdk.PutRequest{Key: key}, strings.NewReader("x"))
		wantErr(t, "put "+key, err, sdk.ErrInvalidArgument)
	}
	if got := mustGet(t, s, "dir/obj"); got != "x" {
		t.Errorf("dir/obj = %q", got)
	}
}

func TestListPrefix(t *testing.T) {
	s, base := newSink(t, nil)
	keys := []string{"app-1", "app.txt", "app/x", "app/y/z", "app0", "apple", "application/y", "b/c", ".hidden/k"}
	for _, k := range keys {
		mustPut(t, s, k, k)
	}
	// Things List must never show: a temporary file, a symlink, and a
	// name no key could address.
	for name, write := range map[string]bool{
		"app/" + tempName("w"): true,
		"app/bad\\name":        true,
		"app/link":             false,
	} {
		p := filepath.Join(base, filepath.FromSlash(name))
		var err error
		if write {
			err = os.WriteFile(p, []byte("junk"), 0o600)
		} else {
			err = os.Symlink(filepath.Join(base, "apple"), p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{".hidden/k", "app-1", "app.txt", "app/x", "app/y/z", "app0", "apple", "application/y", "b/c"}},
		{"app", []string{"app-1", "app.txt", "app/x", "app/y/z", "app0", "apple", "application/y"}},
		{"app/", []string{"app/x", "app/y/z"}},
		{"app/y", []string{"app/y/z"}},
		{"app/x", []string{"app/x"}},
		{"appl", []string{"apple", "application/y"}},
		{"application/", []string{"application/y"}},
		{"b/c", []string{"b/c"}},
		{"b/c/", []string{}},
		{"nope", []string{}},
		{"nope/deeper/", []string{}},
		{".", []string{".hidden/k"}},
	}
	for _, tt := range tests {
		for _, size := range []int{0, 1, 2, 3} {
			got := listAll(t, s, tt.prefix, size)
			if !slices.Equal(got, tt.want) {
				t.Errorf("List(%q, page size %d) = %q, want %q", tt.prefix, size, got, tt.want)
			}
		}
	}
	for _, prefix := range []string{"../", "/", "a//", "a\\b/"} {
		_, err := s.List(context.Background(), sdk.ListRequest{Prefix: prefix})
		wantErr(t, "list "+prefix, err, sdk.ErrInvalidArgument)
	}
}

func TestListPagination(t *testing.T) {
	s, _ := newSink(t, nil)
	ctx := context.Background()
	var keys []string
	for i := range 25 {
		keys = append(keys, fmt.Sprintf("db%d/%02d.dump", i%4, i))
	}
	for _, k := range keys {
		mustPut(t, s, k, k)
	}
	slices.Sort(keys)

	page, err := s.List(ctx, sdk.ListRequest{PageSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Objects) != 7 || page.NextPageToken != keys[6] {
		t.Fatalf("first page: %d objects, token %q; want 7 and %q", len(page.Objects), page.NextPageToken, keys[6])
	}
	if got := listAll(t, s, "", 7); !slices.Equal(got, keys) {
		t.Errorf("paged listing = %q, want %q", got, keys)
	}
	// An exactly full last page ends the listing without an empty page.
	page, err = s.List(ctx, sdk.ListRequest{PageSize: 25})
	if err != nil || len(page.Objects) != 25 || page.NextPageToken != "" {
		t.Errorf("page of 25 of 25: %d objects, token %q, %v", len(page.Objects), page.NextPageToken, err)
	}
	// The token is just a key bound: any string works.
	page, err = s.List(ctx, sdk.ListRequest{PageToken: "db2/"})
	if err != nil || len(page.Objects) == 0 || page.Objects[0].Key != "db2/02.dump" {
		t.Errorf("List after \"db2/\" = %+v, %v", page, err)
	}
	page, err = s.List(ctx, sdk.ListRequest{Prefix: "db1/", PageToken: "db1/13.dump"})
	if err != nil || len(page.Objects) != 2 || page.Objects[0].Key != "db1/17.dump" {
		t.Errorf("List(db1/ after db1/13.dump) = %+v, %v", page, err)
	}
	page, err = s.List(ctx, sdk.ListRequest{PageToken: keys[len(keys)-1]})
	if err != nil || len(page.Objects) != 0 || page.NextPageToken != "" {
		t.Errorf("List after the last key = %+v, %v", page, err)
	}
	// Oversized pages are capped, not refused.
	if _, err := s.List(ctx, sdk.ListRequest{PageSize: 1 << 30}); err != nil {
		t.Errorf("huge page size: %v", err)
	}
}

func TestPutFailureLeavesNothing(t *testing.T) {
	broken := errors.New("stream broken")
	tests := []struct {
		name   string
		reader func(cancel context.CancelFunc) *brokenReader
		cancel bool // cancel ctx before calling Put
		want   error
	}{
		{"reader fails mid-stream", func(context.CancelFunc) *brokenReader {
			return &brokenReader{data: bytes.Repeat([]byte("x"), 3<<20+17), err: broken}
		}, false, broken},
		{"trailer mismatch", func(context.CancelFunc) *brokenReader {
			return &brokenReader{data: []byte("short"), err: fmt.Errorf("trailer: %w", sdk.ErrIntegrity)}
		}, false, sdk.ErrIntegrity},
		{"reader fails at once", func(context.CancelFunc) *brokenReader {
			return &brokenReader{err: broken}
		}, false, broken},
		{"context cancelled before", func(context.CancelFunc) *brokenReader {
			return &brokenReader{data: []byte("x"), err: io.EOF}
		}, true, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, base := newSink(t, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			_, err := s.Put(ctx, sdk.PutRequest{Key: "new/dir/obj"}, tt.reader(cancel))
			wantErr(t, "put", err, tt.want)
			if got := files(t, base); len(got) != 0 {
				t.Errorf("files left behind: %q", got)
			}
			if _, err := os.Stat(filepath.Join(base, "new")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("directories made for the failed upload were left: %v", err)
			}
		})
	}
}

func TestPutCancelledMidStream(t *testing.T) {
	s, base := newSink(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &cancellingReader{cancel: cancel}
	_, err := s.Put(ctx, sdk.PutRequest{Key: "obj"}, r)
	wantErr(t, "put", err, context.Canceled)
	if r.reads > 2 {
		t.Errorf("put kept reading %d times after cancellation", r.reads)
	}
	if got := files(t, base); len(got) != 0 {
		t.Errorf("files left behind: %q", got)
	}
}

func TestFailedReplaceKeepsOldObject(t *testing.T) {
	s, base := newSink(t, nil)
	mustPut(t, s, "a/obj", "old")
	_, err := s.Put(context.Background(), sdk.PutRequest{Key: "a/obj"},
		&brokenReader{data: []byte("new data"), err: sdk.ErrIntegrity})
	wantErr(t, "put", err, sdk.ErrIntegrity)
	if got := mustGet(t, s, "a/obj"); got != "old" {
		t.Errorf("object after failed replace = %q, want %q", got, "old")
	}
	if got := files(t, base); !slices.Equal(got, []string{"a/obj"}) {
		t.Errorf("files = %q", got)
	}
}

func TestPermissions(t *testing.T) {
	s, base := newSink(t, nil)
	mustPut(t, s, "a/b/c.dump", "x")
	checks := map[string]os.FileMode{"a": dirPerm, "a/b": dirPerm, "a/b/c.dump": filePerm}
	for rel, want := range checks {
		fi, err := os.Stat(filepath.Join(base, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %o, want %o", rel, got, want)
		}
	}
}

func TestMinFreeBytes(t *testing.T) {
	s, base := newSink(t, map[string]string{"min_free_bytes": fmt.Sprint(uint64(1) << 62)})
	ctx := context.Background()
	_, err := s.Put(ctx, sdk.PutRequest{Key: "a/obj"}, strings.NewReader("x"))
	wantErr(t, "put", err, sdk.ErrNoSpace)
	if got := files(t, base); len(got) != 0 {
		t.Errorf("files left behind: %q", got)
	}
	_, err = s.CheckReady(ctx)
	wantErr(t, "check ready", err, sdk.ErrNoSpace)
	if err != nil && strings.Contains(err.Error(), base) {
		t.Errorf("CheckReady error %q reveals the base path", err)
	}
}

func TestCheckReady(t *testing.T) {
	s, base := newSink(t, map[string]string{"min_free_bytes": "1"})
	detail, err := s.CheckReady(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(detail, " free") || strings.Contains(detail, base) {
		t.Errorf("detail = %q, want free space and no path", detail)
	}
	if got := files(t, base); len(got) != 0 {
		t.Errorf("probe left files: %q", got)
	}
	if err := os.Remove(base); err != nil {
		t.Fatal(err)
	}
	_, err = s.CheckReady(context.Background())
	wantErr(t, "check ready without base", err, sdk.ErrUnavailable)
}

func TestStaleTempFilesRemoved(t *testing.T) {
	base := filepath.Join(t.TempDir(), "b")
	if err := os.MkdirAll(filepath.Join(base, "app"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	stale := []string{tempName("x"), "app/" + tempName("db.dump")}
	kept := []string{
		"app/" + tempName("fresh"),       // an upload in progress
		"app/.db.dump.tmp-not-hex-stuff", // not our pattern
		"app/obj",                        // an object
	}
	for i, rel := range append(slices.Clone(stale), kept...) {
		p := filepath.Join(base, filepath.FromSlash(rel))
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if i < len(stale) || rel != kept[0] {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := New().Configure(context.Background(), map[string]string{"path": base}); err != nil {
		t.Fatal(err)
	}
	got := files(t, base)
	want := slices.Sorted(slices.Values(kept))
	if !slices.Equal(got, want) {
		t.Errorf("after sweep: %q, want %q", got, want)
	}
}

// TestConcurrentPutDelete races puts and deletes in shared directories so
// that pruning emptied directories collides with creating them.
func TestConcurrentPutDelete(t *testing.T) {
	s, base := newSink(t, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 8 {
		wg.Go(func() {
			for i := range 40 {
				key := fmt.Sprintf("shared/d%d/w%d-%d", i%3, w, i)
				if _, err := s.Put(ctx, sdk.PutRequest{Key: key}, strings.NewReader(key)); err != nil {
					errs <- err
					return
				}
				if err := s.Delete(ctx, key); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := files(t, base); len(got) != 0 {
		t.Errorf("files left: %q", got)
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{64 << 20, "64.0 MiB"},
		{1288490189, "1.2 GiB"},
		{1 << 62, "4.0 EiB"},
	}
	for _, tt := range tests {
		if got := humanBytes(tt.n); got != tt.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
