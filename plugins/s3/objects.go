package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/labelbackup/label-backup/sdk"
)

// Page sizes for List; S3 returns at most 1000 keys per request.
const (
	defaultPageSize = 1000
	maxPageSize     = 1000
)

// CheckReady checks that the bucket exists and the credentials are
// accepted, with HeadBucket.
func (s *Sink) CheckReady(ctx context.Context) (string, error) {
	cfg, err := s.config()
	if err != nil {
		return "", err
	}
	_, err = cfg.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(cfg.bucket)})
	if err != nil {
		err = cfg.headErr(ctx, fmt.Sprintf("bucket %q at %s", cfg.bucket, cfg.endpointName()), err, func(ctx context.Context) error {
			_, err := cfg.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(cfg.bucket), MaxKeys: aws.Int32(1)})
			return err
		})
		if errors.Is(err, sdk.ErrNotFound) {
			return "", fmt.Errorf("bucket %q does not exist at %s (create it first): %w", cfg.bucket, cfg.endpointName(), sdk.ErrNotFound)
		}
		return "", err
	}
	return fmt.Sprintf("bucket %q at %s is reachable", cfg.bucket, cfg.endpointName()), nil
}

// Get writes the object's bytes to w.
func (s *Sink) Get(ctx context.Context, key string, w io.Writer) error {
	cfg, err := s.config()
	if err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	out, err := cfg.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(cfg.bucket), Key: aws.String(key)})
	if err != nil {
		return cfg.wrapErr(fmt.Sprintf("get %q", key), err)
	}
	defer out.Body.Close()
	buf := make([]byte, sdk.DefaultChunkSize) // one read, one message
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("get %q: cancelled after %d bytes: %w", key, n, err)
		}
		k, rerr := io.ReadFull(out.Body, buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return fmt.Errorf("get %q: sending data: %w", key, err)
			}
			n += int64(k)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return cfg.wrapErr(fmt.Sprintf("get %q: reading after %d bytes", key, n), rerr)
		}
	}
	// A connection that dies mid-body may look like a short, clean end.
	if out.ContentLength != nil && *out.ContentLength != n {
		return fmt.Errorf("get %q: received %d bytes of %d: %w", key, n, *out.ContentLength, sdk.ErrUnavailable)
	}
	return nil
}

// Stat describes one object. S3 keeps no sha256 of a multipart object, so
// SHA256 is left empty.
func (s *Sink) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	cfg, err := s.config()
	if err != nil {
		return sdk.ObjectInfo{}, err
	}
	if err := checkKey(key); err != nil {
		return sdk.ObjectInfo{}, err
	}
	out, err := cfg.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(cfg.bucket), Key: aws.String(key)})
	if err != nil {
		return sdk.ObjectInfo{}, cfg.headErr(ctx, fmt.Sprintf("stat %q", key), err, func(ctx context.Context) error {
			out, err := cfg.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(cfg.bucket), Key: aws.String(key), Range: aws.String("bytes=0-0")})
			if err == nil {
				out.Body.Close()
			}
			return err
		})
	}
	return sdk.ObjectInfo{
		Key:      key,
		Size:     aws.ToInt64(out.ContentLength),
		Modified: aws.ToTime(out.LastModified).UTC(),
		URL:      cfg.url(key),
	}, nil
}

// Delete removes one object. S3 deletes are idempotent, so the object is
// looked up first to report a missing key as ErrNotFound.
func (s *Sink) Delete(ctx context.Context, key string) error {
	if _, err := s.Stat(ctx, key); err != nil {
		if errors.Is(err, sdk.ErrNotFound) {
			return fmt.Errorf("delete %q: %w", key, err)
		}
		return err
	}
	cfg, err := s.config()
	if err != nil {
		return err
	}
	_, err = cfg.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(cfg.bucket), Key: aws.String(key)})
	if err != nil {
		return cfg.wrapErr(fmt.Sprintf("delete %q", key), err)
	}
	return nil
}

// List returns one page of objects whose keys start with req.Prefix, in
// lexical (UTF-8 byte) order, as S3 lists them. The page token is S3's
// continuation token, passed through unchanged. Objects whose keys no sink
// could address (folder markers ending in "/", "a//b", ...) are skipped,
// so a page may hold fewer objects than asked for and still have a next
// page. Incomplete multipart uploads are never objects.
func (s *Sink) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	cfg, err := s.config()
	if err != nil {
		return sdk.ListPage{}, err
	}
	if err := checkPrefix(req.Prefix); err != nil {
		return sdk.ListPage{}, err
	}
	size := req.PageSize
	switch {
	case size <= 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(cfg.bucket),
		MaxKeys: aws.Int32(int32(size)),
	}
	if req.Prefix != "" {
		in.Prefix = aws.String(req.Prefix)
	}
	if req.PageToken != "" {
		in.ContinuationToken = aws.String(req.PageToken)
	}
	out, err := cfg.client.ListObjectsV2(ctx, in)
	if err != nil {
		return sdk.ListPage{}, cfg.wrapErr(fmt.Sprintf("list %q", req.Prefix), err)
	}
	var page sdk.ListPage
	for _, o := range out.Contents {
		key := aws.ToString(o.Key)
		if checkKey(key) != nil || !strings.HasPrefix(key, req.Prefix) {
			continue
		}
		page.Objects = append(page.Objects, sdk.ObjectInfo{
			Key:      key,
			Size:     aws.ToInt64(o.Size),
			Modified: aws.ToTime(o.LastModified).UTC(),
			URL:      cfg.url(key),
		})
	}
	if aws.ToBool(out.IsTruncated) {
		page.NextPageToken = aws.ToString(out.NextContinuationToken)
		if page.NextPageToken == "" {
			return sdk.ListPage{}, fmt.Errorf("list %q: the server said more keys follow but gave no continuation token: %w", req.Prefix, sdk.ErrUnavailable)
		}
	}
	return page, nil
}
