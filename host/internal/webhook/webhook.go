// Package webhook delivers backup notifications: HMAC-signed JSON, retried
// with exponential backoff, through a circuit breaker and a bounded queue
// per receiver URL, so one broken receiver never delays or silences
// another and delivery never blocks a backup.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/labelbackup/label-backup/host/internal/labels"
)

// Headers sent with every notification.
const (
	UserAgent       = "LabelBackupAgent/1.0"
	SignatureHeader = "X-LabelBackup-Signature-SHA256"
)

// Options configure a Notifier.
type Options struct {
	// Secret signs every body when set.
	Secret string
	// Timeout bounds one attempt.
	Timeout time.Duration
	// MaxRetries is how many times a failed attempt is retried.
	MaxRetries int
	// Backoff is the wait before the first retry; it doubles each time
	// (default 1 s).
	Backoff time.Duration
	// QueueSize bounds the notifications waiting per receiver (default 100).
	QueueSize int
	// BreakerThreshold consecutive failed deliveries open a receiver's
	// breaker (default 5); it lets one delivery through again after
	// BreakerCooldown (default 30 s).
	BreakerThreshold int
	BreakerCooldown  time.Duration
	Logger           hclog.Logger
	// Client sends the requests (default: a plain client; per-attempt
	// timeouts come from Timeout).
	Client *http.Client
	// OnResult, when set, observes every delivery's outcome (for metrics).
	OnResult func(Result)
}

// Outcome of one notification.
type Outcome string

// Outcomes.
const (
	Delivered Outcome = "delivered"
	Failed    Outcome = "failed"
	// Dropped: the queue was full or the breaker open.
	Dropped Outcome = "dropped"
)

// Result describes one notification's fate.
type Result struct {
	// Receiver is the URL with its path and credentials redacted.
	Receiver string
	Outcome  Outcome
	Attempts int
	Err      error
	// BreakerOpen is the receiver's breaker state after the delivery.
	BreakerOpen bool
}

// Notifier sends notifications. Close it to flush and stop.
type Notifier struct {
	opts Options

	mu        sync.Mutex
	receivers map[string]*receiver
	closed    bool
	wg        sync.WaitGroup
	stop      context.CancelFunc
	ctx       context.Context
}

// New returns a running Notifier.
func New(opts Options) *Notifier {
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 100
	}
	if opts.BreakerThreshold <= 0 {
		opts.BreakerThreshold = 5
	}
	if opts.BreakerCooldown <= 0 {
		opts.BreakerCooldown = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Notifier{opts: opts, receivers: map[string]*receiver{}, ctx: ctx, stop: cancel}
}

// receiver is one URL's queue, worker and breaker. The breaker fields are
// guarded by Notifier.mu.
type receiver struct {
	url      string
	redacted string
	queue    chan []byte

	failures  int // consecutive failed deliveries
	open      bool
	openUntil time.Time
}

// Send queues p for url without blocking. It reports false when the
// notification was dropped (queue full, breaker open, or the notifier
// closed), which is counted and logged; it never panics, even after Close.
func (n *Notifier) Send(url string, p Payload) bool {
	body, err := p.Marshal()
	if err != nil {
		n.opts.Logger.Error("webhook payload not encodable", "error", err)
		return false
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.drop(labels.RedactURL(url), p, "notifier closed", false)
		return false
	}
	r, ok := n.receivers[url]
	if !ok {
		r = &receiver{url: url, redacted: labels.RedactURL(url), queue: make(chan []byte, n.opts.QueueSize)}
		n.receivers[url] = r
		n.wg.Add(1)
		go n.work(r)
	}
	if r.open && time.Now().Before(r.openUntil) {
		n.mu.Unlock()
		n.drop(r.redacted, p, "circuit breaker open", true)
		return false
	}
	select {
	case r.queue <- body:
		n.mu.Unlock()
		return true
	default:
		open := r.open
		n.mu.Unlock()
		n.drop(r.redacted, p, "queue full", open)
		return false
	}
}

func (n *Notifier) drop(receiver string, p Payload, why string, open bool) {
	n.opts.Logger.Warn("webhook dropped", "reason", why, "receiver", receiver, "container", p.ContainerName)
	n.report(Result{Receiver: receiver, Outcome: Dropped, Err: errors.New(why), BreakerOpen: open})
}

// work delivers one receiver's notifications in order.
func (n *Notifier) work(r *receiver) {
	defer n.wg.Done()
	for body := range r.queue {
		n.deliver(r, body)
	}
}

func (n *Notifier) deliver(r *receiver, body []byte) {
	n.mu.Lock()
	if r.open && time.Now().Before(r.openUntil) {
		// Queued before the breaker opened: don't hammer a receiver that
		// is down.
		n.mu.Unlock()
		n.opts.Logger.Warn("webhook dropped", "reason", "circuit breaker open", "receiver", r.redacted)
		n.report(Result{Receiver: r.redacted, Outcome: Dropped, Err: errors.New("circuit breaker open"), BreakerOpen: true})
		return
	}
	halfOpen := r.open // the cooldown is over: one trial delivery
	n.mu.Unlock()
	attempts, err := n.attempt(r, body, halfOpen)

	n.mu.Lock()
	if err == nil {
		if r.open {
			n.opts.Logger.Info("webhook circuit breaker closed", "receiver", r.redacted)
		}
		r.failures, r.open = 0, false
	} else {
		r.failures++
		if halfOpen || r.failures >= n.opts.BreakerThreshold {
			n.opts.Logger.Warn("webhook circuit breaker open", "receiver", r.redacted,
				"consecutive_failures", r.failures, "retry_after", n.opts.BreakerCooldown)
			r.open = true
			r.openUntil = time.Now().Add(n.opts.BreakerCooldown)
		}
	}
	open := r.open
	n.mu.Unlock()

	res := Result{Receiver: r.redacted, Outcome: Delivered, Attempts: attempts, Err: err, BreakerOpen: open}
	if err != nil {
		res.Outcome = Failed
		n.opts.Logger.Error("webhook delivery failed", "receiver", r.redacted, "attempts", attempts, "error", err)
	}
	n.report(res)
}

// attempt posts body, retrying transient failures with exponential
// backoff. A half-open breaker gets a single attempt.
func (n *Notifier) attempt(r *receiver, body []byte, single bool) (int, error) {
	tries := n.opts.MaxRetries + 1
	if single {
		tries = 1
	}
	wait := n.opts.Backoff
	var err error
	for i := 1; i <= tries; i++ {
		var retry bool
		retry, err = n.post(r.url, body)
		if err == nil {
			return i, nil
		}
		if !retry || i == tries {
			return i, err
		}
		select {
		case <-time.After(wait):
		case <-n.ctx.Done():
			return i, fmt.Errorf("%w (shutting down)", err)
		}
		wait *= 2
	}
	return tries, err
}

// post sends one attempt. It reports whether a failure is worth retrying:
// network errors, 5xx, 408 and 429 are; other 4xx are not.
func (n *Notifier) post(url string, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("invalid webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	if n.opts.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(n.opts.Secret, body))
	}
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		// url.Error repeats the URL, which may carry a token: keep only
		// the cause.
		var cause error = err
		if ue := errors.Unwrap(err); ue != nil {
			cause = ue
		}
		return true, fmt.Errorf("request failed: %v", cause)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("receiver answered %s", resp.Status)
	default:
		return false, fmt.Errorf("receiver answered %s (not retried)", resp.Status)
	}
}

func (n *Notifier) report(r Result) {
	if n.opts.OnResult != nil {
		n.opts.OnResult(r)
	}
}

// Close stops accepting notifications and gives the queued ones until ctx
// is done to go out; then in-flight attempts are cancelled.
func (n *Notifier) Close(ctx context.Context) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	for _, r := range n.receivers {
		close(r.queue)
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.stop()
		<-done
	}
	n.stop()
}

// BreakerStates reports each receiver's breaker (redacted URL → open).
func (n *Notifier) BreakerStates() map[string]bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]bool, len(n.receivers))
	for _, r := range n.receivers {
		out[r.redacted] = r.open
	}
	return out
}
