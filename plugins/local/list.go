package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/labelbackup/label-backup/sdk"
)

// Page sizes for List.
const (
	defaultPageSize = 1000
	maxPageSize     = 10000
)

// List returns one page of objects whose keys start with req.Prefix, in
// lexical key order. The page token is the last key of the previous page;
// the next page holds the keys after it.
//
// Only the directory named by the prefix's part up to its last slash is
// walked, and within it only subdirectories that can hold matching keys
// after the token. Directories are visited in an order that yields keys
// already sorted, so the walk stops as soon as the page is full instead of
// reading the whole tree.
func (s *Sink) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	cfg, err := s.config()
	if err != nil {
		return sdk.ListPage{}, err
	}
	size := req.PageSize
	switch {
	case size <= 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}

	// "a/b/c" can only match keys under directory "a/b".
	start := "."
	var dirs []string
	if i := strings.LastIndexByte(req.Prefix, '/'); i >= 0 {
		dir := req.Prefix[:i]
		if problem := pathProblem(dir); problem != "" {
			return sdk.ListPage{}, fmt.Errorf("list prefix %q %s: %w", req.Prefix, problem, sdk.ErrInvalidArgument)
		}
		start, dirs = dir, strings.Split(dir, "/")
	}

	root, err := cfg.openRoot()
	if err != nil {
		return sdk.ListPage{}, fmt.Errorf("list: %w", err)
	}
	defer root.Close()
	if err := walkDirs(root, fmt.Sprintf("prefix %q", req.Prefix), dirs, false); errors.Is(err, sdk.ErrNotFound) {
		return sdk.ListPage{}, nil // nothing can match
	} else if err != nil {
		return sdk.ListPage{}, fmt.Errorf("list: %w", err)
	}

	l := lister{
		ctx:    ctx,
		fsys:   root.FS(),
		cfg:    cfg,
		prefix: req.Prefix,
		after:  req.PageToken,
		limit:  size + 1, // one more tells whether another page follows
	}
	keyPrefix := ""
	if start != "." {
		keyPrefix = start + "/"
	}
	if err := l.walk(start, keyPrefix); err != nil {
		return sdk.ListPage{}, err
	}
	var page sdk.ListPage
	if len(l.out) > size {
		l.out = l.out[:size]
		page.NextPageToken = l.out[size-1].Key
	}
	page.Objects = l.out
	return page, nil
}

// lister is one List call's walk.
type lister struct {
	ctx    context.Context
	fsys   fs.FS // the base, through an os.Root
	cfg    *config
	prefix string
	after  string // page token: only keys > after are returned
	limit  int
	out    []sdk.ObjectInfo
}

// walk lists directory dir, whose entries' keys start with keyPrefix, in
// key order, recursing into subdirectories that may hold matches. It never
// follows symlinks: ReadDir reports them as such and they are skipped like
// every other entry that is neither a directory nor a regular file.
func (l *lister) walk(dir, keyPrefix string) error {
	if err := l.ctx.Err(); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	entries, err := fs.ReadDir(l.fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed while we were walking
	}
	if err != nil {
		return pathError(fmt.Sprintf("list directory %q", keyPrefix), err)
	}
	// A directory's keys all start with "name/", so sorting directories
	// by that puts every entry's keys in lexical order ("a.txt" < "a/x").
	slices.SortFunc(entries, func(a, b fs.DirEntry) int {
		return strings.Compare(sortName(a), sortName(b))
	})
	for _, e := range entries {
		name := e.Name()
		if pathProblem(name) != "" {
			continue // temporary files, and names no key could address
		}
		key := keyPrefix + name
		switch {
		case e.IsDir():
			sub := key + "/"
			if !l.mayContain(sub) {
				continue
			}
			if err := l.walk(path.Join(dir, name), sub); err != nil {
				return err
			}
		case e.Type().IsRegular():
			if !strings.HasPrefix(key, l.prefix) || key <= l.after {
				continue
			}
			fi, err := e.Info()
			if err != nil || !fi.Mode().IsRegular() {
				continue // deleted or replaced since ReadDir
			}
			l.out = append(l.out, l.cfg.objectInfo(key, fi))
		}
		if len(l.out) >= l.limit {
			return nil
		}
	}
	return nil
}

// mayContain reports whether keys starting with sub can both match the
// prefix and come after the page token.
func (l *lister) mayContain(sub string) bool {
	if !strings.HasPrefix(sub, l.prefix) && !strings.HasPrefix(l.prefix, sub) {
		return false
	}
	// Every key under sub sorts below the token when sub does and the
	// token does not itself lie under sub.
	if sub < l.after && !strings.HasPrefix(l.after, sub) {
		return false
	}
	return true
}

func sortName(e fs.DirEntry) string {
	if e.IsDir() {
		return e.Name() + "/"
	}
	return e.Name()
}
