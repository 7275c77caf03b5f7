package local

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/labelbackup/label-backup/sdk"
)

// Get writes the object's bytes to w.
func (s *Sink) Get(ctx context.Context, key string, w io.Writer) error {
	obj, err := s.open(key)
	if err != nil {
		return err
	}
	defer obj.root.Close()
	f, err := obj.root.Open(filepath.FromSlash(key))
	if err != nil {
		return keyError("open", key, err)
	}
	defer f.Close()
	// lookup checked the name; check what was actually opened too, in case
	// it was swapped meanwhile.
	if fi, err := f.Stat(); err != nil {
		return keyError("stat", key, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("key %q is not an object: %w", key, sdk.ErrNotFound)
	}
	buf := make([]byte, sdk.DefaultChunkSize) // one read, one message
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("get %q: cancelled after %d bytes: %w", key, n, err)
		}
		k, rerr := f.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return fmt.Errorf("get %q: sending data: %w", key, err)
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return keyError("read", key, rerr)
		}
	}
}

// Stat describes one object. The sink stores no checksums, so SHA256 is
// left empty rather than re-reading the whole file.
func (s *Sink) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return sdk.ObjectInfo{}, fmt.Errorf("stat %q: %w", key, err)
	}
	obj, err := s.open(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	obj.root.Close()
	return obj.cfg.objectInfo(key, obj.info), nil
}

// Delete removes one object, then the directories above it that are left
// empty, up to but not including the base.
func (s *Sink) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	obj, err := s.open(key)
	if err != nil {
		return err
	}
	defer obj.root.Close()
	if err := obj.root.Remove(filepath.FromSlash(key)); err != nil {
		return keyError("delete", key, err)
	}
	_, dirs := dirOf(obj.parts)
	s.pruneDirs(obj.root, dirs)
	return nil
}

// object is an existing object found by open.
type object struct {
	cfg   *config
	root  *os.Root // the caller closes it
	parts []string
	info  fs.FileInfo
}

// open validates key, opens the base and checks that key names a regular
// file reached through real directories only.
func (s *Sink) open(key string) (object, error) {
	cfg, err := s.config()
	if err != nil {
		return object{}, err
	}
	parts, err := parseKey(key)
	if err != nil {
		return object{}, err
	}
	root, err := cfg.openRoot()
	if err != nil {
		return object{}, fmt.Errorf("key %q: %w", key, err)
	}
	fi, err := lookup(root, key, parts)
	if err != nil {
		root.Close()
		return object{}, err
	}
	return object{cfg: cfg, root: root, parts: parts, info: fi}, nil
}

// lookup returns the lstat of key's file, which must be a regular file:
// symlinks are refused like in walkDirs, and directories are not objects.
func lookup(root *os.Root, key string, parts []string) (fs.FileInfo, error) {
	_, dirs := dirOf(parts)
	if err := walkDirs(root, fmt.Sprintf("key %q", key), dirs, false); err != nil {
		return nil, err
	}
	fi, err := root.Lstat(filepath.FromSlash(key))
	if err != nil {
		return nil, keyError("stat", key, err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("key %q is a symlink, which this sink never follows: %w", key, sdk.ErrInvalidArgument)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("key %q is not an object: %w", key, sdk.ErrNotFound)
	}
	return fi, nil
}

// objectInfo describes the file fi stored under key.
func (c *config) objectInfo(key string, fi fs.FileInfo) sdk.ObjectInfo {
	return sdk.ObjectInfo{Key: key, Size: fi.Size(), Modified: fi.ModTime(), URL: c.url(key)}
}
