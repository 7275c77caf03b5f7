package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var allSentinels = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrUnauthenticated, codes.Unauthenticated},
	{ErrPermission, codes.PermissionDenied},
	{ErrNotFound, codes.NotFound},
	{ErrUnavailable, codes.Unavailable},
	{ErrUnsupported, codes.Unimplemented},
	{ErrIntegrity, codes.DataLoss},
	{ErrNoSpace, codes.ResourceExhausted},
	{ErrEmptyDump, codes.FailedPrecondition},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

func TestSentinelCodesAreDistinct(t *testing.T) {
	seen := map[codes.Code]error{}
	for _, s := range sentinelCodes {
		if prev, ok := seen[s.code]; ok {
			t.Errorf("code %v maps to both %v and %v", s.code, prev, s.err)
		}
		seen[s.code] = s.err
	}
	if len(sentinelCodes) != len(allSentinels) {
		t.Errorf("sentinelCodes has %d entries, this test knows %d: add the new sentinel here", len(sentinelCodes), len(allSentinels))
	}
}

func TestErrorRoundTrip(t *testing.T) {
	type tc struct {
		name     string
		err      error
		wantCode codes.Code
		wantIs   error // nil: errors.Is must hold for no sentinel
	}
	var cases []tc
	for _, s := range allSentinels {
		cases = append(cases,
			tc{"bare " + s.err.Error(), s.err, s.code, s.err},
			tc{"wrapped " + s.err.Error(), fmt.Errorf("bucket %q: %w", "b", s.err), s.code, s.err},
			tc{"doubly wrapped " + s.err.Error(), fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", s.err)), s.code, s.err},
		)
	}
	cases = append(cases,
		tc{"plain error", errors.New("something odd"), codes.Unknown, nil},
		tc{"io.EOF is not a sentinel", fmt.Errorf("reading: %w", io.EOF), codes.Unknown, nil},
		tc{"joined errors", errors.Join(errors.New("a"), ErrNotFound), codes.NotFound, ErrNotFound},
		tc{"real context error", func() error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return fmt.Errorf("pg_dump cancelled: %w", ctx.Err())
		}(), codes.Canceled, context.Canceled},
		tc{"status error without sentinel", status.Error(codes.Internal, "boom"), codes.Internal, nil},
		tc{"wrapped status error", fmt.Errorf("calling s3: %w", status.Error(codes.Aborted, "conflict")), codes.Aborted, nil},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := toStatus(c.err)
			s, ok := status.FromError(st)
			if !ok {
				t.Fatalf("toStatus returned %T, not a status error", st)
			}
			if s.Code() != c.wantCode {
				t.Errorf("code = %v, want %v", s.Code(), c.wantCode)
			}
			if s.Message() != c.err.Error() {
				t.Errorf("status message = %q, want the full message %q", s.Message(), c.err.Error())
			}

			back := fromStatus("stat", st)
			if want := "stat: " + c.err.Error(); back.Error() != want {
				t.Errorf("message after round trip = %q, want %q", back.Error(), want)
			}
			var re *RemoteError
			if !errors.As(back, &re) {
				t.Fatalf("fromStatus returned %T, want *RemoteError", back)
			}
			if re.Code != c.wantCode {
				t.Errorf("RemoteError.Code = %v, want %v", re.Code, c.wantCode)
			}
			for _, s := range allSentinels {
				want := s.err == c.wantIs
				if got := errors.Is(back, s.err); got != want {
					t.Errorf("errors.Is(err, %v) = %v, want %v", s.err, got, want)
				}
			}
		})
	}
}

func TestToStatusNil(t *testing.T) {
	if err := toStatus(nil); err != nil {
		t.Errorf("toStatus(nil) = %v", err)
	}
	if err := fromStatus("op", nil); err != nil {
		t.Errorf("fromStatus(nil) = %v", err)
	}
}

func TestFromStatusNonStatusError(t *testing.T) {
	base := errors.New("local failure")
	cases := []struct {
		name string
		err  error
	}{
		{"plain", base},
		{"sentinel", fmt.Errorf("x: %w", ErrNotFound)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := fromStatus("put", tc.err)
			if got.Error() != "put: "+tc.err.Error() {
				t.Errorf("message = %q", got.Error())
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("fromStatus lost the original error: %v", got)
			}
		})
	}
}

// TestRemoteErrorSecondHop checks that an error received from one plugin
// and returned by another (or re-served by the host) keeps its code and
// message, and does not pick up extra prefixes on the way through.
func TestRemoteErrorSecondHop(t *testing.T) {
	cases := []struct {
		name string
		code codes.Code
		is   error
	}{
		{"not found", codes.NotFound, ErrNotFound},
		{"integrity", codes.DataLoss, ErrIntegrity},
		{"cancelled", codes.Canceled, context.Canceled},
		{"no sentinel", codes.Internal, nil},
		{"unknown", codes.Unknown, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			first := fromStatus("get", status.Error(tc.code, "object \"k\": missing"))
			var re *RemoteError
			if !errors.As(first, &re) {
				t.Fatalf("fromStatus returned %T", first)
			}
			if got := errors.Unwrap(re); got != tc.is {
				t.Errorf("Unwrap = %v, want %v", got, tc.is)
			}

			// Directly as a status (what grpc does with a returned error).
			s, ok := status.FromError(re)
			if !ok || s.Code() != tc.code || s.Message() != re.Message {
				t.Errorf("status.FromError = %v %q (ok %v), want %v %q", s.Code(), s.Message(), ok, tc.code, re.Message)
			}

			// Through toStatus, as a plugin returning it would.
			hop := toStatus(re)
			s2, _ := status.FromError(hop)
			if s2.Code() != tc.code || s2.Message() != re.Message {
				t.Errorf("after a second hop: %v %q, want %v %q", s2.Code(), s2.Message(), tc.code, re.Message)
			}

			// Wrapped by the intermediary, the code still survives.
			wrapped := toStatus(fmt.Errorf("copying: %w", re))
			s3, _ := status.FromError(wrapped)
			if s3.Code() != tc.code || s3.Message() != "copying: "+re.Message {
				t.Errorf("wrapped second hop: %v %q", s3.Code(), s3.Message())
			}

			back := fromStatus("restore", hop)
			if back.Error() != "restore: "+re.Message {
				t.Errorf("message = %q", back.Error())
			}
			if tc.is != nil && !errors.Is(back, tc.is) {
				t.Errorf("errors.Is(%v) lost after the second hop", tc.is)
			}
		})
	}
}
