package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"

	"github.com/labelbackup/label-backup/sdk"
)

// walkDirs checks, from the base down, that each directory in dirs (the
// segments of a relative directory path) is a real directory. With create
// set, missing directories are made with mode 0700; without it a missing
// one is ErrNotFound.
//
// Symlinks are refused outright, even ones pointing inside the base:
// following none is simpler to get right than deciding which are safe, and
// the sink never creates any. what labels errors, e.g. `key "a/b"`.
func walkDirs(root *os.Root, what string, dirs []string, create bool) error {
	for i := range dirs {
		rel := path.Join(dirs[:i+1]...)
		fi, err := root.Lstat(filepath.FromSlash(rel))
		if errors.Is(err, fs.ErrNotExist) && create {
			err = makeDir(root, rel)
			if err == nil {
				continue
			}
			if !errors.Is(err, fs.ErrExist) {
				return pathError(fmt.Sprintf("%s: create directory %q", what, rel), err)
			}
			// Someone else made it meanwhile: check what they made.
			fi, err = root.Lstat(filepath.FromSlash(rel))
		}
		if err != nil {
			return pathError(fmt.Sprintf("%s: stat %q", what, rel), err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s: %q is a symlink, which this sink never follows: %w", what, rel, sdk.ErrInvalidArgument)
		case fi.IsDir():
		case create:
			return fmt.Errorf("%s: %q is an object, not a directory: %w", what, rel, sdk.ErrInvalidArgument)
		default:
			return fmt.Errorf("%s: %q is not a directory: %w", what, rel, sdk.ErrNotFound)
		}
	}
	return nil
}

// makeDir creates one directory with exactly dirPerm, whatever the umask.
// It chmods through an open handle rather than by name: os.Root.Chmod can
// be raced into following a symlink.
func makeDir(root *os.Root, rel string) error {
	name := filepath.FromSlash(rel)
	if err := root.Mkdir(name, dirPerm); err != nil {
		return err
	}
	d, err := root.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Chmod(dirPerm)
}

// pruneDirs removes dirs' directories from the deepest up while they are
// empty, never the base itself. It is best effort: a directory that is not
// empty, or anything unexpected, just stops it.
func (s *Sink) pruneDirs(root *os.Root, dirs []string) {
	s.dirs.Lock()
	defer s.dirs.Unlock()
	for i := len(dirs); i > 0; i-- {
		name := filepath.FromSlash(path.Join(dirs[:i]...))
		fi, err := root.Lstat(name)
		if err != nil || !fi.IsDir() {
			return
		}
		// Remove deletes a directory only when it is empty.
		if root.Remove(name) != nil {
			return
		}
	}
}

// syncDir flushes a directory's entries so a rename in it survives a crash.
func syncDir(root *os.Root, dir string) error {
	if runtime.GOOS == "windows" {
		// Directories cannot be opened for syncing there.
		return nil
	}
	d, err := root.Open(filepath.FromSlash(dir))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// dirOf returns the relative directory holding key's object ("." for the
// base) and the segments leading to it.
func dirOf(parts []string) (string, []string) {
	dirs := parts[:len(parts)-1]
	if len(dirs) == 0 {
		return ".", nil
	}
	return path.Join(dirs...), dirs
}
