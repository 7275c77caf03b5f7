package local

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

func TestParseKey(t *testing.T) {
	long := strings.Repeat("x", maxSegmentLen)
	tests := []struct {
		key     string
		ok      bool
		problem string // in the error message when !ok
	}{
		{key: "a", ok: true},
		{key: "app/2024-01-01/db.dump.gz", ok: true},
		{key: ".hidden", ok: true},
		{key: "a/..b/c..", ok: true},
		{key: "name.tmp-xyz", ok: true},
		{key: ".name.tmp-0123456789abcdeg", ok: true}, // not hex: not a temp name
		{key: "ünïcode/ключ", ok: true},
		{key: long, ok: true},

		{key: "", problem: "empty key"},
		{key: "/etc/passwd", problem: "absolute"},
		{key: "../x", problem: `".." segment`},
		{key: "a/../../x", problem: `".." segment`},
		{key: "..", problem: `".." segment`},
		{key: "a/..", problem: `".." segment`},
		{key: "../backups_old/secret", problem: `".." segment`},
		{key: ".", problem: `"." segment`},
		{key: "./a", problem: `"." segment`},
		{key: "a/./b", problem: `"." segment`},
		{key: `a\b`, problem: "backslash"},
		{key: `..\x`, problem: "backslash"},
		{key: "a\x00b", problem: "NUL"},
		{key: "a\nb", problem: "control character"},
		{key: "x/", problem: "ends with a slash"},
		{key: "a//b", problem: "empty segment"},
		{key: "\xff", problem: "UTF-8"},
		{key: ".db.dump.tmp-0123456789abcdef", problem: "reserved"},
		{key: "a/.b.tmp-0123456789abcdef/c", problem: "reserved"},
		{key: long + "x", problem: "longer than"},
		{key: strings.Repeat("a/", maxKeyLen/2) + "a", problem: "longer than"},
	}
	for _, tt := range tests {
		parts, err := parseKey(tt.key)
		if tt.ok {
			if err != nil {
				t.Errorf("parseKey(%q): %v", tt.key, err)
			} else if got := strings.Join(parts, "/"); got != tt.key {
				t.Errorf("parseKey(%q) segments join to %q", tt.key, got)
			}
			continue
		}
		if err == nil {
			t.Errorf("parseKey(%q) accepted the key", tt.key)
			continue
		}
		wantErr(t, "parseKey("+tt.key+")", err, sdk.ErrInvalidArgument)
		if !strings.Contains(err.Error(), tt.problem) {
			t.Errorf("parseKey(%q) = %q, want it to mention %q", tt.key, err, tt.problem)
		}
	}
}

func TestIsTempName(t *testing.T) {
	for _, name := range []string{tempName("x"), tempName("db.dump.gz"), tempName(probeName)} {
		if !isTempName(name) {
			t.Errorf("isTempName(%q) = false for a name tempName made", name)
		}
	}
	for _, name := range []string{"", ".tmp-0123456789abcdef", "..tmp-0123456789abcdef", "x.tmp-0123456789abcdef", ".x.tmp-0123456789ABCDEF", ".x.tmp-0123456789abcde", ".x"} {
		if isTempName(name) {
			t.Errorf("isTempName(%q) = true", name)
		}
	}
}

// TestConfinement drives every operation at keys that would leave the base
// through the filesystem rather than lexically: symlinks inside the base,
// pointing outside or inside, and a sibling directory sharing the base's
// name as a prefix.
func TestConfinement(t *testing.T) {
	parent := t.TempDir()
	base := filepath.Join(parent, "backups")
	sibling := filepath.Join(parent, "backups_old")
	for _, d := range []string{base, sibling, filepath.Join(base, "real")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(sibling, "secret")
	if err := os.WriteFile(secret, []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"out":      sibling,                        // dir outside
		"in":       filepath.Join(base, "real"),    // dir inside: refused all the same
		"rel":      "../backups_old",               // relative, outside
		"file":     secret,                         // final component, outside
		"real/up":  "..",                           // nested, inside
		"real/abs": "/",                            // nested, to the root
		"dangling": filepath.Join(sibling, "none"), // outside, missing
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(base, name)); err != nil {
			t.Fatal(err)
		}
	}
	s := New()
	if err := s.Configure(context.Background(), map[string]string{"path": base, "min_free_bytes": "0"}); err != nil {
		t.Fatal(err)
	}
	resolved, err := filepath.EvalSymlinks(base)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keys := []string{
		"out/secret", "out/new", "out/deeper/new",
		"in/x", "rel/secret", "file", "dangling",
		"real/up/file", "real/abs/etc/passwd",
		"../backups_old/secret", "../backups_old/new",
	}
	for _, key := range keys {
		ops := map[string]error{}
		_, ops["put"] = s.Put(ctx, sdk.PutRequest{Key: key}, strings.NewReader("attack"))
		ops["get"] = s.Get(ctx, key, &bytes.Buffer{})
		_, ops["stat"] = s.Stat(ctx, key)
		ops["delete"] = s.Delete(ctx, key)
		for op, err := range ops {
			wantErr(t, op+" "+key, err, sdk.ErrInvalidArgument)
			if err != nil && (strings.Contains(err.Error(), resolved) || strings.Contains(err.Error(), parent)) {
				t.Errorf("%s %q: error %q reveals the base path", op, key, err)
			}
		}
	}
	for _, prefix := range []string{"out/", "in/", "real/up/", "../"} {
		_, err := s.List(ctx, sdk.ListRequest{Prefix: prefix})
		wantErr(t, "list "+prefix, err, sdk.ErrInvalidArgument)
	}

	if b, err := os.ReadFile(secret); err != nil || string(b) != "outside" {
		t.Errorf("file outside the base changed: %q, %v", b, err)
	}
	if got := files(t, sibling); len(got) != 1 || got[0] != "secret" {
		t.Errorf("sibling directory now holds %q", got)
	}
	for name := range links {
		if fi, err := os.Lstat(filepath.Join(base, name)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("symlink %q was replaced or removed: %v", name, err)
		}
	}
	// Listing the whole base shows no symlinked content.
	if got := listAll(t, s, "", 0); len(got) != 0 {
		t.Errorf("List(\"\") = %q, want nothing", got)
	}
}
