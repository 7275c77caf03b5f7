package s3

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/labelbackup/label-backup/sdk"
)

// Cleanup aborts the multipart uploads in the bucket that have been idle
// for longer than stale_upload_age: leftovers of plugin processes that were
// killed mid-upload and could not abort their own. It returns how many it
// aborted. Configure runs it; it is exported for hosts and tools that want
// to run it on their own schedule.
func (s *Sink) Cleanup(ctx context.Context) (int, error) {
	cfg, err := s.config()
	if err != nil {
		return 0, err
	}
	return cfg.cleanup(ctx)
}

// cleanup is Cleanup for one configuration.
//
// An upload counts as idle when it was started, and its newest part was
// uploaded, longer than staleAge ago: a long backup that is still
// streaming keeps adding parts, so it is never taken for a leftover, even
// when it has run for longer than staleAge. Only uploads under keys this
// sink could have written are considered.
func (c *config) cleanup(ctx context.Context) (int, error) {
	cutoff := time.Now().Add(-c.staleAge)
	aborted := 0
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(c.bucket)}
	for range 10000 { // bounded: 10,000 pages of 1,000 uploads
		out, err := c.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return aborted, c.wrapErr("list multipart uploads", err)
		}
		for _, up := range out.Uploads {
			key, id := aws.ToString(up.Key), aws.ToString(up.UploadId)
			if checkKey(key) != nil || id == "" || up.Initiated == nil || up.Initiated.After(cutoff) {
				continue
			}
			active, err := c.activeSince(ctx, key, id, cutoff)
			if err != nil {
				return aborted, err
			}
			if active {
				continue
			}
			_, err = c.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(c.bucket), Key: aws.String(key), UploadId: aws.String(id),
			})
			if err != nil {
				err = c.wrapErr(fmt.Sprintf("abort stale upload of %q", key), err)
				if isNotFound(err) {
					continue // finished or aborted meanwhile
				}
				return aborted, err
			}
			aborted++
			sdk.Logger(ctx).Info("aborted a stale multipart upload", "key", key, "bucket", c.bucket,
				"upload_id", id, "initiated", up.Initiated.UTC().Format(time.RFC3339))
		}
		if !aws.ToBool(out.IsTruncated) {
			return aborted, nil
		}
		next := &s3.ListMultipartUploadsInput{Bucket: in.Bucket, KeyMarker: out.NextKeyMarker, UploadIdMarker: out.NextUploadIdMarker}
		if aws.ToString(next.KeyMarker) == aws.ToString(in.KeyMarker) && aws.ToString(next.UploadIdMarker) == aws.ToString(in.UploadIdMarker) {
			return aborted, nil // a server that does not advance: stop rather than loop
		}
		in = next
	}
	return aborted, nil
}

// activeSince reports whether the upload received a part after cutoff.
func (c *config) activeSince(ctx context.Context, key, id string, cutoff time.Time) (bool, error) {
	in := &s3.ListPartsInput{Bucket: aws.String(c.bucket), Key: aws.String(key), UploadId: aws.String(id)}
	for range maxParts {
		out, err := c.client.ListParts(ctx, in)
		if err != nil {
			err = c.wrapErr(fmt.Sprintf("list parts of the upload of %q", key), err)
			if isNotFound(err) {
				return true, nil // gone meanwhile: nothing to abort
			}
			return false, err
		}
		for _, p := range out.Parts {
			if newer(p, cutoff) {
				return true, nil
			}
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextPartNumberMarker) == aws.ToString(in.PartNumberMarker) {
			return false, nil
		}
		in.PartNumberMarker = out.NextPartNumberMarker
	}
	return false, nil
}

func newer(p types.Part, cutoff time.Time) bool {
	return p.LastModified != nil && p.LastModified.After(cutoff)
}
