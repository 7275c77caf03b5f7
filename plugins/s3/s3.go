// Package s3 is the S3-compatible storage sink: it stores backups as
// objects in one bucket of Amazon S3 or of any server speaking its API
// (MinIO, versitygw, Ceph RGW, ...).
//
// Every non-empty upload is a multipart upload, streamed in parts of a
// bounded size, and completed only after the SDK's reader has verified the
// upload's trailer (size and sha256); until then the object does not exist.
// Any failure or cancellation aborts the multipart upload, so nothing is
// left behind. A single streaming PutObject is never used: some servers
// (versitygw before 1.8.1) keep the truncated body of a PUT that dies
// mid-way, whereas an uncompleted multipart upload is never visible.
//
// A plugin process that is killed mid-upload cannot abort its upload. Such
// leftovers are invisible (they are not objects) but take space, so
// Configure aborts the multipart uploads in the bucket that have been idle
// for longer than stale_upload_age (1h by default). The host configures a
// sink process for every backup, so leftovers are collected on the next
// run; a host that keeps one sink process for long should call Configure
// periodically (or at least on start). An upload that still receives parts
// is never taken for a leftover, however long it has run; stale_upload_age
// must exceed the longest pause between two parts of a live upload, which
// the host's backup timeout bounds.
package s3

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"

	"github.com/labelbackup/label-backup/sdk"
)

// Setting names accepted by Configure.
const (
	settingBucket         = "bucket"
	settingRegion         = "region"
	settingEndpoint       = "endpoint"
	settingAccessKeyID    = "access_key_id"
	settingSecretKey      = "secret_access_key"
	settingUsePathStyle   = "use_path_style"
	settingPartSize       = "part_size"
	settingConcurrency    = "concurrency"
	settingStaleUploadAge = "stale_upload_age"
)

// Defaults and limits of the settings.
const (
	defaultRegion      = "us-east-1"
	defaultPartSize    = 8 << 20
	defaultConcurrency = 2
	maxConcurrency     = 64
	defaultStaleAge    = time.Hour
	// cleanupTimeout bounds the stale-upload sweep Configure runs, so an
	// unreachable endpoint delays a backup only a little (CheckReady and
	// Put report the problem).
	cleanupTimeout = 20 * time.Second
)

// Sink is the S3 sink. The zero value is not usable; call [New], then
// Configure.
type Sink struct {
	cfg atomic.Pointer[config]
	// clientOpts adjust the S3 client; tests use them to cut retries.
	clientOpts []func(*s3.Options)
}

// config is what Configure settled on; it is replaced whole, never mutated.
type config struct {
	bucket      string
	region      string
	endpoint    string // "" for the provider's default endpoint
	pathStyle   bool
	partSize    int64
	concurrency int
	// staleAge is how long a multipart upload must be idle before the
	// cleanup aborts it; cleanup is off when noCleanup is set.
	staleAge  time.Duration
	noCleanup bool
	// checksums says whether parts carry an explicit CRC32 checksum (the
	// SDK's default, turned off with AWS_REQUEST_CHECKSUM_CALCULATION=
	// when_required for servers that do not support checksums).
	checksums bool
	client    *s3.Client
	plan      partPlan
	// secret is kept only to scrub it from error text, in case a server
	// ever echoes it.
	secret string
}

var (
	_ sdk.Sink       = (*Sink)(nil)
	_ sdk.Configurer = (*Sink)(nil)
)

// New returns an unconfigured sink.
func New() *Sink { return &Sink{} }

// Info describes the plugin.
func (s *Sink) Info() sdk.Info {
	return sdk.Info{
		Name:         "s3",
		Version:      "0.1.0",
		Kind:         sdk.KindSink,
		Capabilities: []string{sdk.CapGet, sdk.CapList, sdk.CapStat, sdk.CapDelete},
		Options: []sdk.Option{
			{Name: settingBucket, Description: "name of the bucket backups are stored in; it must exist", Required: true},
			{Name: settingRegion, Description: "region of the bucket (default us-east-1)"},
			{Name: settingEndpoint, Description: "URL of an S3-compatible server, e.g. http://minio:9000 (default: Amazon S3)"},
			{Name: settingAccessKeyID, Description: "access key id; with secret_access_key, or both empty for the default AWS credential chain (environment, shared files, instance role)"},
			{Name: settingSecretKey, Description: "secret access key", Secret: true},
			{Name: settingUsePathStyle, Description: `"true" for path-style addressing (http://host/bucket/key), which most self-hosted servers need (default false)`},
			{Name: settingPartSize, Description: "bytes per multipart upload part, 5 MiB to 5 GiB (default 8388608); it grows for very large backups so that 10,000 parts cover 5 TiB"},
			{Name: settingConcurrency, Description: "parts uploaded at once (default 2); memory use is about part_size x (concurrency+1)"},
			{Name: settingStaleUploadAge, Description: `abort multipart uploads idle for longer than this, left by crashed uploads, on Configure (Go duration, default 1h; "off" disables)`},
		},
	}
}

var knownSettings = []string{
	settingBucket, settingRegion, settingEndpoint, settingAccessKeyID, settingSecretKey,
	settingUsePathStyle, settingPartSize, settingConcurrency, settingStaleUploadAge,
}

// Configure validates settings, builds the S3 client and aborts multipart
// uploads that crashed uploads left behind (best effort: failures are
// logged, and CheckReady reports an unusable storage).
func (s *Sink) Configure(ctx context.Context, settings map[string]string) error {
	cfg, err := parseSettings(settings)
	if err != nil {
		return err
	}
	if err := cfg.newClient(ctx, settings[settingAccessKeyID], settings[settingSecretKey], s.clientOpts); err != nil {
		return err
	}
	s.cfg.Store(cfg)
	log := sdk.Logger(ctx)
	creds := "default credential chain"
	if cfg.secret != "" {
		creds = "static access key"
	}
	log.Debug("s3 sink configured", "bucket", cfg.bucket, "region", cfg.region, "endpoint", cfg.endpointName(),
		"path_style", cfg.pathStyle, "part_size", cfg.partSize, "concurrency", cfg.concurrency, "credentials", creds)
	if !cfg.noCleanup {
		cctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		defer cancel()
		n, err := cfg.cleanup(cctx)
		if err != nil {
			log.Warn("aborting stale multipart uploads failed", "bucket", cfg.bucket, "aborted", n, "error", err.Error())
		} else if n > 0 {
			log.Info("aborted stale multipart uploads", "bucket", cfg.bucket, "aborted", n)
		}
	}
	return nil
}

// parseSettings checks every setting but the credentials, which only the
// client builder sees.
func parseSettings(settings map[string]string) (*config, error) {
	var unknown []string
	for k := range settings {
		if !slices.Contains(knownSettings, k) {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown setting %s (accepted: %s): %w",
			strings.Join(unknown, ", "), strings.Join(knownSettings, ", "), sdk.ErrInvalidArgument)
	}
	cfg := &config{
		bucket:      strings.TrimSpace(settings[settingBucket]),
		region:      strings.TrimSpace(settings[settingRegion]),
		partSize:    defaultPartSize,
		concurrency: defaultConcurrency,
		staleAge:    defaultStaleAge,
	}
	if err := checkBucketName(cfg.bucket); err != nil {
		return nil, err
	}
	if cfg.region == "" {
		cfg.region = defaultRegion
	}
	if ep := strings.TrimSpace(settings[settingEndpoint]); ep != "" {
		if err := checkEndpoint(ep); err != nil {
			return nil, err
		}
		cfg.endpoint = strings.TrimRight(ep, "/")
	}
	if v, ok := settings[settingUsePathStyle]; ok && strings.TrimSpace(v) != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s %q is not true or false: %w", settingUsePathStyle, v, sdk.ErrInvalidArgument)
		}
		cfg.pathStyle = b
	}
	if v, ok := settings[settingPartSize]; ok && strings.TrimSpace(v) != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < minPartSize || n > maxPartSize {
			return nil, fmt.Errorf("%s %q is not a whole number of bytes from %d (5 MiB) to %d (5 GiB): %w",
				settingPartSize, v, minPartSize, int64(maxPartSize), sdk.ErrInvalidArgument)
		}
		cfg.partSize = n
	}
	if v, ok := settings[settingConcurrency]; ok && strings.TrimSpace(v) != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > maxConcurrency {
			return nil, fmt.Errorf("%s %q is not a whole number from 1 to %d: %w", settingConcurrency, v, maxConcurrency, sdk.ErrInvalidArgument)
		}
		cfg.concurrency = n
	}
	if v, ok := settings[settingStaleUploadAge]; ok && strings.TrimSpace(v) != "" {
		v = strings.TrimSpace(v)
		if strings.EqualFold(v, "off") {
			cfg.noCleanup = true
		} else {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return nil, fmt.Errorf(`%s %q is not a duration like "1h" or "off": %w`, settingStaleUploadAge, v, sdk.ErrInvalidArgument)
			}
			cfg.staleAge = d
		}
	}
	cfg.plan = newPartPlan(cfg.partSize)
	return cfg, nil
}

// checkBucketName applies the rules every S3-compatible server shares; the
// server has the last word on anything stricter.
func checkBucketName(b string) error {
	if b == "" {
		return fmt.Errorf("%s is required: %w", settingBucket, sdk.ErrInvalidArgument)
	}
	if len(b) < 3 || len(b) > 255 {
		return fmt.Errorf("bucket name %q must be 3 to 255 characters long: %w", b, sdk.ErrInvalidArgument)
	}
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("bucket name %q may hold only letters, digits, '-', '.' and '_': %w", b, sdk.ErrInvalidArgument)
		}
	}
	return nil
}

// checkEndpoint accepts an http(s) URL of a server. Credentials in the URL
// are refused without echoing it: they would end up in error messages.
func checkEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil {
		return fmt.Errorf("%s is not a URL: %w", settingEndpoint, sdk.ErrInvalidArgument)
	}
	if u.User != nil {
		return fmt.Errorf("%s must not contain credentials (use %s and %s): %w",
			settingEndpoint, settingAccessKeyID, settingSecretKey, sdk.ErrInvalidArgument)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:9000: %w", settingEndpoint, ep, sdk.ErrInvalidArgument)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s %q must not have a query or fragment: %w", settingEndpoint, ep, sdk.ErrInvalidArgument)
	}
	return nil
}

// newClient builds the S3 client: static credentials when both keys are
// given, the default AWS credential chain when neither is.
func (c *config) newClient(ctx context.Context, keyID, secret string, extra []func(*s3.Options)) error {
	keyID, secret = strings.TrimSpace(keyID), strings.TrimSpace(secret)
	if (keyID == "") != (secret == "") {
		return fmt.Errorf("%s and %s must be given together (or both left empty for the default AWS credential chain): %w",
			settingAccessKeyID, settingSecretKey, sdk.ErrInvalidArgument)
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(c.region),
		// The SDK's own logger writes to stderr, which go-plugin reads as
		// log lines; errors reach the host through return values instead.
		awsconfig.WithLogger(logging.Nop{}),
	}
	if secret != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(keyID, secret, "")))
		c.secret = secret
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		// Only the shared config files or the environment can be wrong
		// here; their errors name files and profiles, not secrets.
		return fmt.Errorf("load AWS configuration: %s: %w", c.redact(err.Error()), sdk.ErrInvalidArgument)
	}
	c.checksums = awsCfg.RequestChecksumCalculation != aws.RequestChecksumCalculationWhenRequired
	c.client = s3.NewFromConfig(awsCfg, append([]func(*s3.Options){func(o *s3.Options) {
		if c.endpoint != "" {
			o.BaseEndpoint = aws.String(c.endpoint)
		}
		o.UsePathStyle = c.pathStyle
		o.DisableLogOutputChecksumValidationSkipped = true
	}}, extra...)...)
	return nil
}

// endpointName names where the bucket lives, for messages.
func (c *config) endpointName() string {
	if c.endpoint != "" {
		return c.endpoint
	}
	return "Amazon S3 " + c.region
}

// config returns the current configuration, or an error before Configure.
func (s *Sink) config() (*config, error) {
	if c := s.cfg.Load(); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("s3 sink is not configured: %w", sdk.ErrInvalidArgument)
}

// url is the object's address, reported as its URL.
func (c *config) url(key string) string { return "s3://" + c.bucket + "/" + key }

// redact removes the secret key from text, should a server or library
// ever echo it.
func (c *config) redact(text string) string {
	if c.secret == "" {
		return text
	}
	return strings.ReplaceAll(text, c.secret, "[redacted]")
}
