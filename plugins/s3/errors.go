package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/labelbackup/label-backup/sdk"
)

// S3 error codes, by the SDK sentinel they map to.
var (
	notFoundCodes = []string{"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound"}
	authCodes     = []string{
		"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
		"TokenRefreshRequired", "InvalidSecurity", "MissingSecurityHeader", "AuthorizationHeaderMalformed",
		"InvalidClientTokenId", "UnrecognizedClientException", "Unauthorized", "AccountProblem",
		"RequestTimeTooSkewed", "Forbidden", "XAdminUserNotFound",
	}
	permissionCodes  = []string{"AccessDenied", "AllAccessDisabled", "InvalidObjectState"}
	unavailableCodes = []string{
		"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
		"ThrottlingException", "RequestThrottled", "OperationAborted", "TooManyRequests",
	}
	integrityCodes = []string{"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "IncompleteBody", "InvalidChecksum"}
	noSpaceCodes   = []string{"QuotaExceeded", "XMinioStorageFull", "StorageFull", "InsufficientStorage"}
	invalidCodes   = []string{
		"InvalidArgument", "InvalidRequest", "InvalidBucketName", "KeyTooLongError", "EntityTooLarge",
		"EntityTooSmall", "InvalidPart", "InvalidPartOrder", "MalformedXML", "MethodNotAllowed",
		"PermanentRedirect", "MovedPermanently", "AuthorizationQueryParametersError", "IllegalLocationConstraintException",
	}
)

// wrapErr turns an error of an S3 call into one that wraps the matching SDK
// sentinel (or the context's error), with a short message that starts with
// what was being done. The secret key is scrubbed from it.
func (c *config) wrapErr(what string, err error) error {
	kind, detail := classify(err)
	detail = c.redact(detail)
	if kind == sdk.ErrNotFound && strings.Contains(detail, "NoSuchBucket") {
		detail = fmt.Sprintf("bucket %q does not exist at %s (%s)", c.bucket, c.endpointName(), detail)
	}
	if kind == nil {
		return fmt.Errorf("%s: %s", what, detail)
	}
	return fmt.Errorf("%s: %s: %w", what, detail, kind)
}

// headErr is wrapErr for HEAD requests. Their responses carry no error
// body, so a bare 404 cannot tell a missing object from a missing bucket or
// an unknown access key id (versitygw answers 404 to that), nor a bare 403
// rejected credentials from a denied permission. probe makes the same
// request as a GET, whose error code tells; it runs only on such failures.
func (c *config) headErr(ctx context.Context, what string, err error, probe func(context.Context) error) error {
	if isBareStatus(err) {
		if perr := probe(ctx); perr != nil && !isBareStatus(perr) {
			var apiErr smithy.APIError
			if errors.As(perr, &apiErr) {
				return c.wrapErr(what, perr)
			}
		}
	}
	return c.wrapErr(what, err)
}

// isBareStatus reports an API error whose code is only the HTTP status.
func isBareStatus(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	code := apiErr.ErrorCode()
	return code == "NotFound" || code == "Forbidden" || code == "BadRequest" || code == "MovedPermanently"
}

// classify returns the sentinel err maps to (nil when none fits) and a
// description of it without the SDK's operation boilerplate.
func classify(err error) (error, string) {
	// A cancelled or expired context wins: it is why the call failed,
	// whatever the transport made of it.
	if errors.Is(err, context.Canceled) {
		return context.Canceled, "cancelled"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return context.DeadlineExceeded, "deadline exceeded"
	}
	var apiErr smithy.APIError
	status := httpStatus(err)
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		detail := code
		if msg := apiErr.ErrorMessage(); msg != "" {
			detail += ": " + msg
		}
		if status != 0 {
			detail = fmt.Sprintf("%s (HTTP %d)", detail, status)
		}
		if region := bucketRegion(err); region != "" {
			detail += fmt.Sprintf("; the bucket is in region %q", region)
		}
		if kind := kindOfCode(code); kind != nil {
			return kind, detail
		}
		if kind := kindOfStatus(status); kind != nil {
			return kind, detail
		}
		return nil, detail
	}
	if status != 0 {
		detail := fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
		return kindOfStatus(status), detail
	}
	var quota ratelimit.QuotaExceededError
	if errors.As(err, &quota) {
		return sdk.ErrUnavailable, "too many failed requests, retries suspended: " + innermost(err)
	}
	if isNetwork(err) {
		return sdk.ErrUnavailable, "cannot reach the server: " + innermost(err)
	}
	if strings.Contains(err.Error(), "get identity") || strings.Contains(err.Error(), "retrieve credentials") {
		return sdk.ErrUnauthenticated, "no usable credentials: " + innermost(err)
	}
	return nil, err.Error()
}

func kindOfCode(code string) error {
	for _, m := range []struct {
		codes []string
		kind  error
	}{
		{notFoundCodes, sdk.ErrNotFound},
		{authCodes, sdk.ErrUnauthenticated},
		{permissionCodes, sdk.ErrPermission},
		{unavailableCodes, sdk.ErrUnavailable},
		{integrityCodes, sdk.ErrIntegrity},
		{noSpaceCodes, sdk.ErrNoSpace},
		{invalidCodes, sdk.ErrInvalidArgument},
	} {
		for _, c := range m.codes {
			if strings.EqualFold(c, code) {
				return m.kind
			}
		}
	}
	return nil
}

// kindOfStatus maps an HTTP status without a telling error code. A bare
// 403 (HEAD requests have no error body) most often means the credentials
// were rejected.
func kindOfStatus(status int) error {
	switch {
	case status == http.StatusNotFound:
		return sdk.ErrNotFound
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return sdk.ErrUnauthenticated
	case status == http.StatusInsufficientStorage:
		return sdk.ErrNoSpace
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status >= 500:
		return sdk.ErrUnavailable
	case status == http.StatusMovedPermanently, status == http.StatusBadRequest:
		return sdk.ErrInvalidArgument
	}
	return nil
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.HTTPStatusCode()
	}
	return 0
}

// bucketRegion is the region Amazon S3 names when a request went to the
// wrong one.
func bucketRegion(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.Header.Get("X-Amz-Bucket-Region")
	}
	return ""
}

// isNetwork reports whether err is a failure to talk to the server at all:
// refused or reset connections, DNS, timeouts, a server that hung up.
func isNetwork(err error) bool {
	var netErr net.Error
	var sendErr *smithyhttp.RequestSendError
	return errors.As(err, &netErr) || errors.As(err, &sendErr)
}

// innermost is the message of the deepest wrapped error, which says what
// actually happened ("dial tcp 127.0.0.1:9: connect: connection refused")
// without the layers of operation names around it.
func innermost(err error) string {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Error()
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

func isNotFound(err error) bool { return errors.Is(err, sdk.ErrNotFound) }
