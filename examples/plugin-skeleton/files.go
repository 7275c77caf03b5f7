// Package files is an example third-party dumper plugin, written only
// against the Label Backup SDK: it backs up a directory as a tar stream
// and restores it. Copy this module to start a plugin of your own.
//
// A target's connection is a file URL naming the directory:
// "file:///srv/data". Restore writes into the directory named by the
// target's connection, which must exist and be empty.
package files

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/labelbackup/label-backup/sdk"
)

// Dumper implements sdk.Dumper and sdk.Restorer.
type Dumper struct{}

// New returns the plugin's implementation.
func New() *Dumper { return &Dumper{} }

// Info describes the plugin. Its Name must match the binary's name:
// label-backup-plugin-files.
func (*Dumper) Info() sdk.Info {
	return sdk.Info{
		Name:             "files",
		Version:          "0.1.0",
		Kind:             sdk.KindDumper,
		Capabilities:     []string{sdk.CapRestore},
		DefaultExtension: ".tar",
	}
}

// dir extracts and checks the directory of a target.
func dir(t sdk.Target) (string, error) {
	u, err := url.Parse(t.Connection)
	if err != nil || u.Scheme != "file" || u.Path == "" {
		return "", fmt.Errorf("connection must be a file:///absolute/path URL: %w", sdk.ErrInvalidArgument)
	}
	return filepath.Clean(u.Path), nil
}

// Validate checks the directory exists and is readable.
func (*Dumper) Validate(_ context.Context, t sdk.Target) (sdk.ValidateResult, error) {
	d, err := dir(t)
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	st, err := os.Stat(d)
	if errors.Is(err, fs.ErrNotExist) {
		return sdk.ValidateResult{}, fmt.Errorf("directory %s: %w", d, sdk.ErrNotFound)
	}
	if err != nil {
		return sdk.ValidateResult{}, fmt.Errorf("directory %s: %w", d, sdk.ErrUnavailable)
	}
	if !st.IsDir() {
		return sdk.ValidateResult{}, fmt.Errorf("%s is not a directory: %w", d, sdk.ErrInvalidArgument)
	}
	return sdk.ValidateResult{ServerVersion: "filesystem"}, nil
}

// Dump writes a tar of the directory's regular files and subdirectories.
func (d *Dumper) Dump(ctx context.Context, t sdk.Target, w io.Writer) (sdk.DumpResult, error) {
	root, err := dir(t)
	if err != nil {
		return sdk.DumpResult{}, err
	}
	if _, err := d.Validate(ctx, t); err != nil {
		return sdk.DumpResult{}, err
	}
	sdk.Logger(ctx).Info("archiving directory", "dir", root)
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == root || !(e.Type().IsRegular() || e.IsDir()) {
			return nil // symlinks, sockets and devices are skipped
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return sdk.DumpResult{}, fmt.Errorf("archiving %s: %w", root, err)
	}
	return sdk.DumpResult{Format: "tar", Extension: ".tar"}, nil
}

// Restore extracts a tar stream into the target directory.
func (d *Dumper) Restore(ctx context.Context, t sdk.Target, _ string, r io.Reader) (sdk.RestoreResult, error) {
	root, err := dir(t)
	if err != nil {
		return sdk.RestoreResult{}, err
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return sdk.RestoreResult{}, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sdk.RestoreResult{}, fmt.Errorf("reading archive: %w", err)
		}
		name := filepath.FromSlash(hdr.Name)
		if !filepath.IsLocal(name) {
			return sdk.RestoreResult{}, fmt.Errorf("archive entry %q escapes the target: %w", hdr.Name, sdk.ErrInvalidArgument)
		}
		p := filepath.Join(root, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return sdk.RestoreResult{}, err
			}
		case tar.TypeReg:
			if err := writeFile(p, tr, hdr.FileInfo().Mode().Perm()); err != nil {
				return sdk.RestoreResult{}, err
			}
		}
	}
	// Read what follows the archive's end so the SDK can check the trailer.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return sdk.RestoreResult{}, err
	}
	return sdk.RestoreResult{}, nil
}

func writeFile(p string, r io.Reader, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("restoring %s: %w", strings.TrimPrefix(p, "/"), err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Interface guards.
var (
	_ sdk.Dumper   = (*Dumper)(nil)
	_ sdk.Restorer = (*Dumper)(nil)
)
