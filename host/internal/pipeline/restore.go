package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/labelbackup/label-backup/host/internal/compress"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/metadata"
	"github.com/labelbackup/label-backup/host/internal/objname"
	"github.com/labelbackup/label-backup/host/internal/pluginmgr"
	"github.com/labelbackup/label-backup/sdk"
)

// Located is a stored backup with its metadata and the destination
// holding it.
type Located struct {
	Key      string
	Dest     string
	Metadata metadata.Metadata
}

// Locate finds the backup called key: in dest, or when dest is empty in
// local storage and then S3.
func (r *Runner) Locate(ctx context.Context, key, dest string) (Located, error) {
	key = objname.TrimMetadata(key)
	if _, ok := objname.Parse(key); !ok {
		return Located{}, fmt.Errorf("%q: %w", key, ErrInvalidKey)
	}
	dests := []string{labels.DestLocal, labels.DestRemote}
	if dest != "" {
		dests = []string{dest}
	}
	for _, d := range dests {
		raw, err := r.readMetadataFrom(ctx, d, key)
		if errors.Is(err, sdk.ErrNotFound) || errors.Is(err, errNoSink) {
			continue
		}
		if err != nil {
			return Located{}, err
		}
		m, err := metadata.Unmarshal(raw)
		if err != nil {
			return Located{}, fmt.Errorf("metadata of %s: %w", key, err)
		}
		return Located{Key: key, Dest: d, Metadata: m}, nil
	}
	return Located{}, fmt.Errorf("backup %s (or its metadata): %w", key, sdk.ErrNotFound)
}

// VerifyResult is one backup's checksum verification.
type VerifyResult struct {
	Key      string
	Size     int64
	Expected string
	Actual   string
}

// OK reports whether the stored bytes match the metadata.
func (v VerifyResult) OK() bool { return v.Expected == v.Actual }

// Verify re-reads a backup through its sink and recomputes its sha256.
func (r *Runner) Verify(ctx context.Context, loc Located, progress io.Writer) (VerifyResult, error) {
	sink, err := r.startSinkFor(ctx, loc.Dest)
	if err != nil {
		return VerifyResult{}, err
	}
	defer sink.Close()
	h := sha256.New()
	cw := &counter{w: h, progress: progress, total: loc.Metadata.BackupSizeBytes}
	if err := sink.Get(ctx, loc.Key, cw); err != nil {
		return VerifyResult{}, fmt.Errorf("reading %s: %w", loc.Key, sink.Explain(err))
	}
	res := VerifyResult{Key: loc.Key, Size: cw.n, Expected: loc.Metadata.Checksum, Actual: hex.EncodeToString(h.Sum(nil))}
	if cw.n != loc.Metadata.BackupSizeBytes {
		res.Actual = fmt.Sprintf("%s (size %d, metadata says %d)", res.Actual, cw.n, loc.Metadata.BackupSizeBytes)
	}
	return res, nil
}

// RestoreRequest says where a backup goes back to.
type RestoreRequest struct {
	Target sdk.Target
	// Decrypt opens the stored stream of an encrypted backup; required
	// when the metadata records encryption.
	Decrypt func(io.Reader) (io.Reader, error)
	// Progress, when set, receives progress lines.
	Progress io.Writer
}

// Restore checks the backup's checksum against its metadata first (so a
// corrupt backup never touches the target), checks the target's
// connection, then streams the backup through decryption and
// decompression into the dumper plugin's restore.
func (r *Runner) Restore(ctx context.Context, loc Located, req RestoreRequest) error {
	m := loc.Metadata
	if m.Encryption != "" && m.Encryption != "none" && req.Decrypt == nil {
		return fmt.Errorf("backup is encrypted with %s: give the private key or identity to decrypt it", m.Encryption)
	}
	v, err := r.Verify(ctx, loc, req.Progress)
	if err != nil {
		return err
	}
	if !v.OK() {
		return fmt.Errorf("backup %s is corrupt: sha256 %s, metadata says %s; the target was not touched: %w",
			loc.Key, v.Actual, v.Expected, sdk.ErrIntegrity)
	}

	dumper, err := r.plugins.StartDumper(ctx, m.DatabaseType)
	if err != nil {
		return err
	}
	defer dumper.Close()
	if !dumper.Info.Has(sdk.CapRestore) {
		return fmt.Errorf("the %s plugin cannot restore; restore %s by hand (see docs/RESTORE.md): %w", m.DatabaseType, loc.Key, sdk.ErrUnsupported)
	}
	// The connection must work; a database that does not exist yet is
	// fine for a restore (MongoDB creates it on first write, a dropped
	// database comes back): the engine's restore reports it if not.
	if _, err := dumper.Validate(ctx, req.Target); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return fmt.Errorf("restore target: %w", dumper.Explain(err))
	}
	sink, err := r.startSinkFor(ctx, loc.Dest)
	if err != nil {
		return err
	}
	defer sink.Close()

	w, err := dumper.OpenRestore(ctx, req.Target, m.DumpFormat)
	if err != nil {
		return fmt.Errorf("starting the restore: %w", dumper.Explain(err))
	}
	defer w.Abort()

	pr, pw := io.Pipe()
	sum := sha256.New()
	go func() {
		err := sink.Get(ctx, loc.Key, io.MultiWriter(pw, sum))
		pw.CloseWithError(sink.Explain(err))
	}()
	defer pr.Close()
	var stored io.Reader = pr
	if req.Decrypt != nil && m.Encryption != "none" && m.Encryption != "" {
		if stored, err = req.Decrypt(pr); err != nil {
			return fmt.Errorf("decrypting: %w", err)
		}
	}
	zr, err := compress.NewReader(m.CompressionType, stored)
	if err != nil {
		return err
	}
	defer zr.Close()
	if _, err := io.Copy(w, zr); err != nil {
		return fmt.Errorf("restoring %s: %w", loc.Key, dumper.Explain(err))
	}
	// Read to the end so the checksum covers every stored byte.
	if _, err := io.Copy(io.Discard, pr); err != nil {
		return fmt.Errorf("reading %s: %w", loc.Key, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != m.Checksum {
		return fmt.Errorf("backup %s changed while restoring (sha256 %s): %w", loc.Key, got, sdk.ErrIntegrity)
	}
	if _, err := w.Commit(); err != nil {
		return fmt.Errorf("restore failed: %w", dumper.Explain(err))
	}
	return nil
}

// List returns every backup with metadata under prefix in dest.
func (r *Runner) List(ctx context.Context, dest, prefix string) ([]Located, error) {
	sink, err := r.startSinkFor(ctx, dest)
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	var out []Located
	token := ""
	for {
		page, err := sink.List(ctx, sdk.ListRequest{Prefix: prefix, PageToken: token, PageSize: 1000})
		if err != nil {
			return nil, sink.Explain(err)
		}
		for _, o := range page.Objects {
			key, isMeta := objname.CutMetadata(o.Key)
			if !isMeta {
				continue
			}
			if _, ok := objname.Parse(key); !ok {
				continue
			}
			raw, err := metadata.Fetch(ctx, sink, o.Key)
			if err != nil {
				continue // the backup may be mid-deletion
			}
			m, err := metadata.Unmarshal(raw)
			if err != nil {
				continue
			}
			out = append(out, Located{Key: key, Dest: dest, Metadata: m})
		}
		if page.NextPageToken == "" {
			return out, nil
		}
		token = page.NextPageToken
	}
}

var errNoSink = errors.New("destination not configured")

func (r *Runner) startSinkFor(ctx context.Context, dest string) (*pluginmgr.Sink, error) {
	name, settings, err := r.SinkFor(dest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoSink, err)
	}
	return r.plugins.StartSink(ctx, name, settings)
}

func (r *Runner) readMetadataFrom(ctx context.Context, dest, key string) ([]byte, error) {
	sink, err := r.startSinkFor(ctx, dest)
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	raw, err := metadata.Fetch(ctx, sink, key+objname.MetadataSuffix)
	if err != nil {
		return nil, sink.Explain(err)
	}
	return raw, nil
}

// counter counts bytes into a hash and reports progress every 64 MiB.
type counter struct {
	w        hash.Hash
	n        int64
	total    int64
	progress io.Writer
	next     int64
}

func (c *counter) Write(p []byte) (int, error) {
	c.w.Write(p)
	c.n += int64(len(p))
	if c.progress != nil && c.n >= c.next {
		fmt.Fprintf(c.progress, "\rread %d / %d MiB", c.n>>20, c.total>>20)
		c.next = c.n + 64<<20
	}
	return len(p), nil
}
