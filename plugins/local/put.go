package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/labelbackup/label-backup/sdk"
)

// maxTempAttempts bounds retries when a random temporary name is taken.
const maxTempAttempts = 3

// Put stores r under req.Key: it writes a temporary file beside the final
// name and renames it into place only after r returned io.EOF, which the
// SDK yields only once the upload's size and sha256 were verified.
// Whatever goes wrong before that, the temporary file is removed and an
// existing object under the key is left untouched.
func (s *Sink) Put(ctx context.Context, req sdk.PutRequest, r io.Reader) (sdk.ObjectInfo, error) {
	cfg, err := s.config()
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	key := req.Key
	parts, err := parseKey(key)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return sdk.ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	if err := cfg.checkSpace(); err != nil {
		return sdk.ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	root, err := cfg.openRoot()
	if err != nil {
		return sdk.ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	defer root.Close()

	dir, dirs := dirOf(parts)
	final := filepath.FromSlash(key)
	f, tmp, err := s.createTemp(root, key, dirs, parts[len(parts)-1])
	if err != nil {
		s.pruneDirs(root, dirs)
		return sdk.ObjectInfo{}, err
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			root.Remove(tmp)
			s.pruneDirs(root, dirs)
		}
	}()

	size, err := receive(ctx, key, f, r)
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	if err := f.Sync(); err != nil {
		return sdk.ObjectInfo{}, keyError("sync", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return sdk.ObjectInfo{}, keyError("stat", key, err)
	}
	if err := f.Close(); err != nil {
		return sdk.ObjectInfo{}, keyError("close", key, err)
	}
	// Last chance to honour a cancellation: after the rename the object
	// is visible and the upload can no longer fail.
	if err := ctx.Err(); err != nil {
		return sdk.ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	if err := root.Rename(tmp, final); err != nil {
		return sdk.ObjectInfo{}, keyError("rename upload into", key, err)
	}
	committed = true
	if err := syncDir(root, dir); err != nil {
		// The object is complete and visible; only its survival of a
		// power cut is in doubt. Failing now would report a stored
		// object as missing, so warn instead.
		sdk.Logger(ctx).Warn("syncing directory after put failed", "key", key, "error", bareError(err))
	}
	return sdk.ObjectInfo{
		Key:      key,
		Size:     size,
		Modified: fi.ModTime(),
		URL:      cfg.url(key),
		// No SHA256: the SDK already verified the upload's digest and
		// reports it; hashing again here would cost a core for nothing.
	}, nil
}

// createTemp makes the directories leading to key and an exclusive, mode
// 0600 temporary file beside its final name. It returns the file and its
// name relative to root.
func (s *Sink) createTemp(root *os.Root, key string, dirs []string, name string) (*os.File, string, error) {
	s.dirs.Lock()
	defer s.dirs.Unlock()
	if err := walkDirs(root, fmt.Sprintf("key %q", key), dirs, true); err != nil {
		return nil, "", err
	}
	// Refuse what is in the way before receiving anything: a directory
	// would make the final rename fail after the whole upload, and a
	// symlink is something an operator put there that we would silently
	// replace.
	if fi, err := root.Lstat(filepath.FromSlash(key)); err == nil {
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, "", fmt.Errorf("key %q is a symlink, which this sink never replaces: %w", key, sdk.ErrInvalidArgument)
		case fi.IsDir():
			return nil, "", fmt.Errorf("key %q is a directory: %w", key, sdk.ErrInvalidArgument)
		}
	}
	for attempt := 1; ; attempt++ {
		tmp := filepath.FromSlash(path.Join(path.Join(dirs...), tempName(name)))
		f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
		if errors.Is(err, fs.ErrExist) && attempt < maxTempAttempts {
			continue
		}
		if err != nil {
			return nil, "", keyError("create temporary file for", key, err)
		}
		// The mode given to OpenFile is filtered by the umask; make it exact.
		if err := f.Chmod(filePerm); err != nil {
			f.Close()
			root.Remove(tmp)
			return nil, "", keyError("chmod temporary file for", key, err)
		}
		return f, tmp, nil
	}
}

// receive copies r into f until r's io.EOF (which the SDK returns only
// after verifying the upload's size and sha256). io.Copy lets the SDK's
// reader write each received chunk straight into the file; ctxWriter stops
// a cancelled upload promptly even if r keeps delivering.
func receive(ctx context.Context, key string, f *os.File, r io.Reader) (int64, error) {
	w := &ctxWriter{ctx: ctx, f: f}
	n, err := io.Copy(w, r)
	switch {
	case w.ctxErr != nil:
		return 0, fmt.Errorf("put %q: cancelled after %d bytes: %w", key, n, w.ctxErr)
	case w.writeErr != nil:
		return 0, keyError("write", key, w.writeErr)
	case err != nil:
		return 0, fmt.Errorf("put %q: receiving data: %w", key, err)
	}
	return n, nil
}

// ctxWriter writes to f until ctx is done, remembering why it stopped.
type ctxWriter struct {
	ctx      context.Context
	f        *os.File
	ctxErr   error
	writeErr error
}

func (w *ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		w.ctxErr = err
		return 0, err
	}
	n, err := w.f.Write(p)
	if err != nil {
		w.writeErr = err
	}
	return n, err
}

// checkSpace fails with ErrNoSpace when the filesystem is below the
// configured headroom. Where free space cannot be measured it passes.
func (c *config) checkSpace() error {
	if c.minFree == 0 {
		return nil
	}
	free, err := freeSpace(c.base)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return pathError("measure free space", err)
	}
	if free < c.minFree {
		return fmt.Errorf("only %s free, need at least %s: %w", humanBytes(free), humanBytes(c.minFree), sdk.ErrNoSpace)
	}
	return nil
}
