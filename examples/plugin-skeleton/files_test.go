package files

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

func fill(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a.bin", "sub/b.bin", "sub/c.txt"} {
		data := make([]byte, (i+1)<<20) // several MiB: cancellation needs a stream longer than one chunk
		rand.Read(data)
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestConformance runs the SDK's conformance kit, as every plugin should.
func TestConformance(t *testing.T) {
	src := fill(t)
	sdktest.RunDumperSuite(t, sdktest.DumperSuite{
		New:         func(*testing.T) sdk.Dumper { return New() },
		Target:      sdk.Target{Connection: "file://" + src},
		Unreachable: sdk.Target{Connection: "file:///does/not/exist"},
		Restore: func(t *testing.T, c *sdk.DumperClient, dump []byte) {
			dst := t.TempDir()
			if _, err := c.Restore(context.Background(), sdk.Target{Connection: "file://" + dst}, "tar", bytes.NewReader(dump)); err != nil {
				t.Fatalf("restore: %v", err)
			}
			for _, name := range []string{"a.bin", "sub/b.bin", "sub/c.txt"} {
				want, _ := os.ReadFile(filepath.Join(src, name))
				got, err := os.ReadFile(filepath.Join(dst, name))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: restored %d bytes (err %v), want %d", name, len(got), err, len(want))
				}
			}
		},
	})
}

func TestRestoreRefusesEscapes(t *testing.T) {
	var buf bytes.Buffer
	// An archive whose entry climbs out of the target directory.
	tw := newTar(&buf, "../evil", []byte("x"))
	tw.Close()
	_, err := New().Restore(context.Background(), sdk.Target{Connection: "file://" + t.TempDir()}, "tar", &buf)
	if err == nil {
		t.Fatal("restore accepted an entry outside the target")
	}
}
