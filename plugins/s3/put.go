package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/labelbackup/label-backup/sdk"
)

// abortTimeout bounds the cleanup of a failed upload, which runs on a
// context of its own: the caller's may be the reason it failed.
const abortTimeout = 30 * time.Second

const defaultContentType = "application/octet-stream"

// Put stores r under req.Key with a multipart upload: parts are read into
// buffers of the planned size and uploaded up to `concurrency` at a time,
// and the upload is completed only after r returned io.EOF, which the SDK
// yields only once the upload's size and sha256 were verified. On any
// failure or cancellation the multipart upload is aborted, so no object
// and no parts remain; an existing object under the key stays untouched
// until the completion replaces it atomically.
//
// Memory is bounded by part size x (concurrency + 1). An empty upload is
// stored with a PutObject of an empty body (there is nothing to truncate).
func (s *Sink) Put(ctx context.Context, req sdk.PutRequest, r io.Reader) (sdk.ObjectInfo, error) {
	cfg, err := s.config()
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	key := req.Key
	if err := checkKey(key); err != nil {
		return sdk.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return sdk.ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
	}
	contentType := req.ContentType
	if contentType == "" {
		contentType = defaultContentType
	}
	u := &upload{
		cfg:         cfg,
		key:         key,
		contentType: contentType,
		free:        make(chan []byte, cfg.concurrency+1),
		slots:       make(chan struct{}, cfg.concurrency),
		failed:      make(chan struct{}),
	}
	u.ctx, u.cancel = context.WithCancel(ctx)
	defer u.cancel()
	log := sdk.Logger(ctx)
	start := time.Now()
	size, err := u.run(ctx, r)
	if err != nil {
		u.cancel()
		u.wg.Wait()
		u.abort(ctx)
		log.Debug("put failed", "key", key, "bucket", cfg.bucket, "error", err.Error())
		return sdk.ObjectInfo{}, err
	}
	// Modified is our clock at completion: S3 does not return the
	// object's time, and a HEAD just for it would cost a round trip.
	log.Debug("put finished", "key", key, "bucket", cfg.bucket, "bytes", size, "parts", len(u.parts),
		"seconds", time.Since(start).Seconds())
	return sdk.ObjectInfo{Key: key, Size: size, Modified: time.Now().UTC(), URL: cfg.url(key)}, nil
}

// upload is one Put in progress.
type upload struct {
	cfg         *config
	key         string
	contentType string
	// ctx is cancelled when a part fails, stopping the others.
	ctx    context.Context
	cancel context.CancelFunc
	// uploadID is set once the multipart upload exists.
	uploadID string

	// free holds part buffers that are not in use; allocated counts those
	// that exist. At most concurrency+1 do: one being filled, the others
	// being uploaded.
	free      chan []byte
	allocated int
	// slots limits the parts in flight to concurrency.
	slots chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	parts  []types.CompletedPart
	err    error         // the first part failure
	failed chan struct{} // closed on the first part failure
}

// run reads r part by part, uploads the parts and completes the upload
// once r ends cleanly. It returns the object's size.
func (u *upload) run(ctx context.Context, r io.Reader) (int64, error) {
	var total int64
	for n := 1; ; n++ {
		if err := u.partErr(); err != nil {
			return 0, err
		}
		buf, err := u.buffer(int(u.cfg.plan.size(n)))
		if err != nil {
			return 0, err
		}
		got, eof, err := u.fill(ctx, r, buf)
		total += int64(got)
		if err != nil {
			return 0, err
		}
		if got == 0 && eof {
			u.release(buf)
			if n == 1 {
				return 0, u.putEmpty(ctx)
			}
			break
		}
		if n > maxParts {
			return 0, fmt.Errorf("put %q: the upload exceeds %d parts (%d bytes so far), more than S3 allows in one object: %w",
				u.key, maxParts, total, sdk.ErrInvalidArgument)
		}
		if u.uploadID == "" {
			if err := u.create(); err != nil {
				return 0, err
			}
		}
		if err := u.send(int32(n), buf[:got]); err != nil {
			return 0, err
		}
		if eof {
			break
		}
	}
	u.wg.Wait()
	if err := u.partErr(); err != nil {
		return 0, err
	}
	// Last chance to honour a cancellation: once completed, the object is
	// visible and the upload can no longer fail.
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("put %q: %w", u.key, err)
	}
	return total, u.complete(ctx)
}

// fill reads from r into buf until buf is full or r ends. eof is set when
// r returned io.EOF, meaning the upload is complete and verified; any
// other error fails the upload.
func (u *upload) fill(ctx context.Context, r io.Reader, buf []byte) (n int, eof bool, err error) {
	for n < len(buf) {
		if err := ctx.Err(); err != nil {
			return n, false, fmt.Errorf("put %q: cancelled: %w", u.key, err)
		}
		k, rerr := r.Read(buf[n:])
		n += k
		if rerr == io.EOF {
			return n, true, nil
		}
		if rerr != nil {
			if cerr := ctx.Err(); cerr != nil {
				return n, false, fmt.Errorf("put %q: cancelled: %w", u.key, cerr)
			}
			return n, false, fmt.Errorf("put %q: receiving data: %w", u.key, rerr)
		}
	}
	return n, false, nil
}

// buffer returns a part buffer of exactly size bytes, reusing a free one
// when possible and waiting for one when concurrency+1 exist.
func (u *upload) buffer(size int) ([]byte, error) {
	for {
		var b []byte
		select {
		case b = <-u.free:
		default:
			if u.allocated < cap(u.free) {
				u.allocated++
				return make([]byte, size), nil
			}
			select {
			case b = <-u.free:
			case <-u.failed:
				return nil, u.partErr()
			}
		}
		if cap(b) >= size {
			return b[:size], nil
		}
		// The plan moved on to bigger parts: let the old buffer go.
		u.allocated--
	}
}

func (u *upload) release(b []byte) { u.free <- b }

// partErr returns the first part failure, if any.
func (u *upload) partErr() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *upload) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
		close(u.failed)
		u.cancel()
	}
}

// create starts the multipart upload.
func (u *upload) create() error {
	in := &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(u.cfg.bucket),
		Key:         aws.String(u.key),
		ContentType: aws.String(u.contentType),
	}
	if u.cfg.checksums {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	out, err := u.cfg.client.CreateMultipartUpload(u.ctx, in)
	if err != nil {
		return u.cfg.wrapErr(fmt.Sprintf("put %q: start multipart upload", u.key), err)
	}
	if out.UploadId == nil || *out.UploadId == "" {
		return fmt.Errorf("put %q: the server returned no upload id: %w", u.key, sdk.ErrUnavailable)
	}
	u.uploadID = *out.UploadId
	return nil
}

// send uploads part n from buf in the background once a slot is free; buf
// goes back to the free list when the part is done.
func (u *upload) send(n int32, buf []byte) error {
	select {
	case u.slots <- struct{}{}:
	case <-u.failed:
		u.release(buf)
		return u.partErr()
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() { <-u.slots }()
		defer u.release(buf)
		in := &s3.UploadPartInput{
			Bucket:        aws.String(u.cfg.bucket),
			Key:           aws.String(u.key),
			UploadId:      aws.String(u.uploadID),
			PartNumber:    aws.Int32(n),
			Body:          bytes.NewReader(buf),
			ContentLength: aws.Int64(int64(len(buf))),
		}
		if u.cfg.checksums {
			in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
		}
		out, err := u.cfg.client.UploadPart(u.ctx, in)
		if err != nil {
			u.fail(u.cfg.wrapErr(fmt.Sprintf("put %q: upload part %d", u.key, n), err))
			return
		}
		part := types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag}
		if u.cfg.checksums {
			part.ChecksumCRC32 = out.ChecksumCRC32
		}
		u.mu.Lock()
		u.parts = append(u.parts, part)
		u.mu.Unlock()
	}()
	return nil
}

// complete makes the object visible. It runs on a context that the
// caller's cancellation no longer reaches: run checked it just before,
// and a completion cut off half-way would leave us not knowing whether the
// object exists.
func (u *upload) complete(ctx context.Context) error {
	slices.SortFunc(u.parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout+time.Duration(len(u.parts))*100*time.Millisecond)
	defer cancel()
	_, err := u.cfg.client.CompleteMultipartUpload(cctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(u.cfg.bucket),
		Key:             aws.String(u.key),
		UploadId:        aws.String(u.uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
	})
	if err != nil {
		return u.cfg.wrapErr(fmt.Sprintf("put %q: complete multipart upload", u.key), err)
	}
	return nil
}

// putEmpty stores an empty object. Its body cannot be truncated, so a
// plain PutObject is safe, and S3 refuses a multipart upload without
// parts.
func (u *upload) putEmpty(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %q: %w", u.key, err)
	}
	_, err := u.cfg.client.PutObject(u.ctx, &s3.PutObjectInput{
		Bucket:        aws.String(u.cfg.bucket),
		Key:           aws.String(u.key),
		Body:          bytes.NewReader(nil),
		ContentLength: aws.Int64(0),
		ContentType:   aws.String(u.contentType),
	})
	if err != nil {
		return u.cfg.wrapErr(fmt.Sprintf("put %q", u.key), err)
	}
	return nil
}

// abort removes the multipart upload and its parts after a failure, on a
// fresh context: the caller's may well be cancelled already.
//
// A part upload the server is still processing when the abort arrives (its
// request was cancelled on our side, not yet on the server's) may bring the
// upload back, which is why S3's documentation says an abort may have to be
// repeated: abort checks that the upload is gone a moment later, and
// aborts again if not. An upload that cannot be aborted is left to the
// stale-upload cleanup.
func (u *upload) abort(ctx context.Context) {
	if u.uploadID == "" {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	var err error
	for attempt := range abortAttempts {
		if err = u.abortOnce(actx); err == nil {
			var gone bool
			gone, err = u.gone(actx, abortSettle<<attempt)
			if gone {
				return
			}
		}
		if actx.Err() != nil {
			break
		}
	}
	if err == nil {
		err = errors.New("the upload is still listed after repeated aborts")
	}
	sdk.Logger(ctx).Warn("aborting a failed multipart upload failed; the stale-upload cleanup will retry",
		"key", u.key, "bucket", u.cfg.bucket, "upload_id", u.uploadID, "error", err.Error())
}

// Abort retries: the checks come abortSettle, then twice, four times...
// as long after each abort.
const (
	abortAttempts = 5
	abortSettle   = 50 * time.Millisecond
)

// abortOnce aborts the upload; one that is already gone is fine.
func (u *upload) abortOnce(ctx context.Context) error {
	_, err := u.cfg.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(u.cfg.bucket),
		Key:      aws.String(u.key),
		UploadId: aws.String(u.uploadID),
	})
	if err != nil {
		if err = u.cfg.wrapErr("abort", err); errors.Is(err, sdk.ErrNotFound) {
			return nil
		}
	}
	return err
}

// gone waits for wait, then reports whether the upload no longer exists.
func (u *upload) gone(ctx context.Context, wait time.Duration) (bool, error) {
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return false, ctx.Err()
	}
	_, err := u.cfg.client.ListParts(ctx, &s3.ListPartsInput{
		Bucket:   aws.String(u.cfg.bucket),
		Key:      aws.String(u.key),
		UploadId: aws.String(u.uploadID),
		MaxParts: aws.Int32(1),
	})
	if err == nil {
		return false, nil
	}
	if err = u.cfg.wrapErr("check abort", err); errors.Is(err, sdk.ErrNotFound) {
		return true, nil
	}
	return false, err
}
