package local

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// TestOverGRPC drives the sink through the SDK's real gRPC shims, as the
// host does: the reader Put gets is then the SDK's trailer-checking one.
func TestOverGRPC(t *testing.T) {
	base := filepath.Join(t.TempDir(), "b")
	c := sdktest.SinkClient(t, New())
	ctx := context.Background()
	if err := c.Configure(ctx, map[string]string{"path": base, "min_free_bytes": "0"}); err != nil {
		t.Fatal(err)
	}
	resolved, err := filepath.EvalSymlinks(base)
	if err != nil {
		t.Fatal(err)
	}
	data := strings.Repeat("0123456789", 400_000)
	obj, err := c.Put(ctx, sdk.PutRequest{Key: "app/db.dump"}, strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != int64(len(data)) || obj.URL != filepath.Join(resolved, "app", "db.dump") {
		t.Errorf("Put = %+v", obj)
	}
	var got bytes.Buffer
	if err := c.Get(ctx, "app/db.dump", &got); err != nil || got.String() != data {
		t.Errorf("Get: %d bytes, %v", got.Len(), err)
	}
	page, err := c.List(ctx, sdk.ListRequest{Prefix: "app"})
	if err != nil || len(page.Objects) != 1 {
		t.Errorf("List = %+v, %v", page, err)
	}

	// Errors keep their kind across the wire and never name the base.
	_, err = c.Put(ctx, sdk.PutRequest{Key: "../escape"}, strings.NewReader("x"))
	wantErr(t, "put ../escape", err, sdk.ErrInvalidArgument)
	if err != nil && strings.Contains(err.Error(), resolved) {
		t.Errorf("error %q reveals the base path", err)
	}
	wantErr(t, "get missing", c.Get(ctx, "missing", &bytes.Buffer{}), sdk.ErrNotFound)

	// An upload aborted mid-stream leaves nothing, not even its temp file.
	w, err := c.OpenPut(ctx, sdk.PutRequest{Key: "app/aborted"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte("y"), 3<<20)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := files(t, resolved)
		if len(left) == 1 && left[0] == "app/db.dump" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after aborted put the base holds %q", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(resolved, "app", "aborted")); !os.IsNotExist(err) {
		t.Errorf("aborted object exists: %v", err)
	}

	if err := c.Delete(ctx, "app/db.dump"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete again", c.Delete(ctx, "app/db.dump"), sdk.ErrNotFound)
}
