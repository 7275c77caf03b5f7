package webhook

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func successPayload() Payload {
	return Payload{
		ContainerID:     "dbe737c824731c8f8c34e356d38a183502024c136a180618cf34ae08783ef649",
		ContainerName:   "myapp_postgres",
		DatabaseType:    "postgres",
		DatabaseName:    "myapp",
		DestinationURL:  "s3://my-backup-bucket/postgres-backups/myapp_postgres/postgres-myapp-20250124T105400Z-9f86d081.dump.gz",
		Success:         true,
		BackupSizeBytes: Size(1048576),
		DurationSeconds: 2.45,
		TimestampUTC:    Timestamp(time.Date(2025, 1, 24, 10, 54, 0, 123456000, time.UTC)),
		CronSchedule:    "0 2 * * *",
		BackupPrefix:    "postgres-backups",
		DestinationType: "s3",
	}
}

func failurePayload() Payload {
	return Payload{
		ContainerID:     "dbe737c824731c8f8c34e356d38a183502024c136a180618cf34ae08783ef649",
		ContainerName:   "myapp_postgres",
		DatabaseType:    "postgres",
		DatabaseName:    "myapp",
		Success:         false,
		Error:           "connection check failed: validate: connection refused",
		DurationSeconds: 30.0,
		TimestampUTC:    Timestamp(time.Date(2025, 1, 24, 10, 54, 0, 123456000, time.UTC)),
		CronSchedule:    "0 2 * * *",
		BackupPrefix:    "postgres-backups",
		DestinationType: "s3",
	}
}

// TestPayloadGolden pins the exact bytes of both documented payload shapes.
func TestPayloadGolden(t *testing.T) {
	for name, p := range map[string]Payload{"success": successPayload(), "failure": failurePayload()} {
		t.Run(name, func(t *testing.T) {
			got, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if string(got) != string(want) {
				t.Errorf("payload =\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestPresenceRules: error only on failure, size only on success,
// destination_url always.
func TestPresenceRules(t *testing.T) {
	for _, tc := range []struct {
		p                 Payload
		hasError, hasSize bool
	}{
		{successPayload(), false, true},
		{failurePayload(), true, false},
	} {
		raw, _ := tc.p.Marshal()
		var m map[string]any
		json.Unmarshal(raw, &m)
		if _, ok := m["error"]; ok != tc.hasError {
			t.Errorf("success=%v: error present = %v", tc.p.Success, ok)
		}
		if _, ok := m["backup_size_bytes"]; ok != tc.hasSize {
			t.Errorf("success=%v: backup_size_bytes present = %v", tc.p.Success, ok)
		}
		if _, ok := m["destination_url"]; !ok {
			t.Errorf("success=%v: destination_url missing", tc.p.Success)
		}
		for _, f := range []string{"container_id", "container_name", "database_type", "success", "duration_seconds", "timestamp_utc"} {
			if _, ok := m[f]; !ok {
				t.Errorf("required field %q missing", f)
			}
		}
	}
}

// testReceiver is a real HTTP endpoint that verifies signatures the way the
// README tells receivers to.
type testReceiver struct {
	*httptest.Server
	secret string
	mu     sync.Mutex
	bodies [][]byte
	calls  atomic.Int32
	status func(call int) int
	delay  time.Duration
	bad    atomic.Int32 // requests with a wrong signature or headers
}

func newTestReceiver(t *testing.T, secret string, status func(int) int) *testReceiver {
	r := &testReceiver{secret: secret, status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		call := int(r.calls.Add(1))
		body, _ := io.ReadAll(req.Body)
		if r.delay > 0 {
			time.Sleep(r.delay)
		}
		if req.Header.Get("Content-Type") != "application/json" || req.Header.Get("User-Agent") != UserAgent ||
			(secret != "" && !Verify(secret, body, req.Header.Get(SignatureHeader))) {
			r.bad.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		r.mu.Unlock()
		code := http.StatusOK
		if r.status != nil {
			code = r.status(call)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *testReceiver) received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

type results struct {
	mu  sync.Mutex
	all []Result
	ch  chan Result
}

func newResults() *results { return &results{ch: make(chan Result, 100)} }

func (r *results) add(res Result) {
	r.mu.Lock()
	r.all = append(r.all, res)
	r.mu.Unlock()
	r.ch <- res
}

func (r *results) next(t *testing.T) Result {
	t.Helper()
	select {
	case res := <-r.ch:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery result within 10s")
		return Result{}
	}
}

func newNotifier(t *testing.T, opts Options) (*Notifier, *results) {
	res := newResults()
	opts.OnResult = res.add
	if opts.Backoff == 0 {
		opts.Backoff = 10 * time.Millisecond
	}
	n := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n, res
}

func TestSignedDelivery(t *testing.T) {
	const secret = "your-super-secret-webhook-key"
	rcv := newTestReceiver(t, secret, nil)
	n, res := newNotifier(t, Options{Secret: secret, MaxRetries: 3})
	if !n.Send(rcv.URL+"/webhook", successPayload()) {
		t.Fatal("send refused")
	}
	if r := res.next(t); r.Outcome != Delivered || r.Attempts != 1 {
		t.Fatalf("result = %+v", r)
	}
	if rcv.bad.Load() != 0 {
		t.Fatal("testReceiver rejected the signature or headers")
	}
	// The README's shell recipe computes the same signature.
	body := rcv.bodies[0]
	cmd := exec.Command("openssl", "dgst", "-sha256", "-hmac", secret, "-hex")
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	fields := strings.Fields(string(out))
	if got := fields[len(fields)-1]; got != Sign(secret, body) {
		t.Errorf("openssl says %s, we sent %s", got, Sign(secret, body))
	}
}

func TestNoSecretNoSignature(t *testing.T) {
	var sig atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sig.Store(r.Header.Get(SignatureHeader))
	}))
	defer srv.Close()
	n, res := newNotifier(t, Options{})
	n.Send(srv.URL, successPayload())
	res.next(t)
	if s := sig.Load().(string); s != "" {
		t.Errorf("signature %q sent without a secret", s)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name         string
		status       func(int) int
		wantOutcome  Outcome
		wantAttempts int
	}{
		{"5xx then success", func(c int) int {
			if c < 3 {
				return 503
			}
			return 200
		}, Delivered, 3},
		{"429 is retried", func(c int) int {
			if c == 1 {
				return 429
			}
			return 204
		}, Delivered, 2},
		{"408 is retried", func(c int) int {
			if c == 1 {
				return 408
			}
			return 200
		}, Delivered, 2},
		{"400 is not retried", func(int) int { return 400 }, Failed, 1},
		{"404 is not retried", func(int) int { return 404 }, Failed, 1},
		{"gives up after max retries", func(int) int { return 500 }, Failed, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newTestReceiver(t, "s", tt.status)
			n, res := newNotifier(t, Options{Secret: "s", MaxRetries: 2})
			n.Send(rcv.URL, failurePayload())
			r := res.next(t)
			if r.Outcome != tt.wantOutcome || r.Attempts != tt.wantAttempts {
				t.Errorf("result = %+v, want %s after %d attempts", r, tt.wantOutcome, tt.wantAttempts)
			}
		})
	}
}

func TestBackoffIsExponential(t *testing.T) {
	var times []time.Time
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		w.WriteHeader(500)
	}))
	defer srv.Close()
	n, res := newNotifier(t, Options{MaxRetries: 3, Backoff: 50 * time.Millisecond})
	n.Send(srv.URL, failurePayload())
	res.next(t)
	if len(times) != 4 {
		t.Fatalf("%d attempts, want 4", len(times))
	}
	for i, want := range []time.Duration{50, 100, 200} {
		gap := times[i+1].Sub(times[i])
		if gap < want*time.Millisecond || gap > want*time.Millisecond*4 {
			t.Errorf("gap %d = %v, want about %vms", i, gap, want)
		}
	}
}

func TestTimeout(t *testing.T) {
	rcv := newTestReceiver(t, "", nil)
	rcv.delay = 500 * time.Millisecond
	n, res := newNotifier(t, Options{Timeout: 100 * time.Millisecond})
	start := time.Now()
	n.Send(rcv.URL, successPayload())
	r := res.next(t)
	if r.Outcome != Failed || time.Since(start) > 2*time.Second {
		t.Errorf("slow testReceiver: %+v after %v", r, time.Since(start))
	}
}

// TestCircuitBreaker: five consecutive failures open the breaker; while
// open, notifications are dropped without a request; after the cooldown one
// trial goes through, and success closes it.
func TestCircuitBreaker(t *testing.T) {
	var healthy atomic.Bool
	rcv := newTestReceiver(t, "", func(int) int {
		if healthy.Load() {
			return 200
		}
		return 500
	})
	n, res := newNotifier(t, Options{MaxRetries: 0, BreakerCooldown: 300 * time.Millisecond})
	for i := range 5 {
		n.Send(rcv.URL, failurePayload())
		r := res.next(t)
		if r.Outcome != Failed || r.BreakerOpen != (i == 4) {
			t.Fatalf("delivery %d: %+v", i, r)
		}
	}
	calls := rcv.calls.Load()
	if n.Send(rcv.URL, failurePayload()) {
		t.Error("send accepted while the breaker is open")
	}
	if r := res.next(t); r.Outcome != Dropped || !r.BreakerOpen {
		t.Errorf("while open: %+v", r)
	}
	if rcv.calls.Load() != calls {
		t.Error("a request reached the testReceiver while the breaker was open")
	}
	if st := n.BreakerStates(); len(st) != 1 || !st[firstKey(st)] {
		t.Errorf("breaker states = %v", st)
	}

	time.Sleep(350 * time.Millisecond)
	healthy.Store(true)
	if !n.Send(rcv.URL, failurePayload()) {
		t.Fatal("send refused after the cooldown")
	}
	if r := res.next(t); r.Outcome != Delivered || r.BreakerOpen {
		t.Errorf("half-open trial: %+v", r)
	}
}

func firstKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

// TestBreakerReopensOnFailedTrial: the half-open trial failing opens the
// breaker again for a full cooldown.
func TestBreakerReopensOnFailedTrial(t *testing.T) {
	rcv := newTestReceiver(t, "", func(int) int { return 500 })
	n, res := newNotifier(t, Options{MaxRetries: 2, BreakerThreshold: 1, BreakerCooldown: 200 * time.Millisecond})
	n.Send(rcv.URL, failurePayload())
	res.next(t)
	time.Sleep(250 * time.Millisecond)
	before := rcv.calls.Load()
	n.Send(rcv.URL, failurePayload())
	r := res.next(t)
	if r.Outcome != Failed || !r.BreakerOpen || rcv.calls.Load()-before != 1 {
		t.Errorf("trial: %+v, %d requests (want exactly one, no retries)", r, rcv.calls.Load()-before)
	}
	if n.Send(rcv.URL, failurePayload()) {
		t.Error("breaker not open again after a failed trial")
	}
}

// TestReceiversAreIndependent: a slow or broken testReceiver delays and
// silences nobody else.
func TestReceiversAreIndependent(t *testing.T) {
	slow := newTestReceiver(t, "", nil)
	slow.delay = 2 * time.Second
	broken := newTestReceiver(t, "", func(int) int { return 500 })
	fast := newTestReceiver(t, "", nil)
	n, _ := newNotifier(t, Options{MaxRetries: 0, Timeout: 5 * time.Second, BreakerThreshold: 1})
	n.Send(slow.URL, successPayload())
	n.Send(broken.URL, successPayload())
	n.Send(broken.URL, successPayload())
	start := time.Now()
	for range 3 {
		n.Send(fast.URL, successPayload())
	}
	deadline := time.Now().Add(time.Second)
	for fast.received() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if fast.received() != 3 {
		t.Fatalf("fast testReceiver got %d of 3 within 1s", fast.received())
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("fast testReceiver delayed %v by the others", d)
	}
}

func TestQueueIsBounded(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	n, res := newNotifier(t, Options{QueueSize: 2, Timeout: 10 * time.Second})
	accepted := 0
	for range 10 {
		if n.Send(srv.URL, successPayload()) {
			accepted++
		}
	}
	// One in flight plus two queued; the rest dropped and reported.
	if accepted > 3 || accepted < 2 {
		t.Errorf("accepted %d of 10 with a queue of 2", accepted)
	}
	dropped := 0
	for range 10 - accepted {
		if r := res.next(t); r.Outcome == Dropped {
			dropped++
		}
	}
	if dropped != 10-accepted {
		t.Errorf("%d drops reported, want %d", dropped, 10-accepted)
	}
}

// TestCloseFlushesThenRefuses: queued notifications go out on Close; a send
// after Close is refused, never a panic (the earlier implementation
// panicked when a backup finished after shutdown closed the queue).
func TestCloseFlushesThenRefuses(t *testing.T) {
	rcv := newTestReceiver(t, "", nil)
	rcv.delay = 20 * time.Millisecond
	n := New(Options{Backoff: time.Millisecond})
	for range 5 {
		n.Send(rcv.URL, successPayload())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.Close(ctx)
	if rcv.received() != 5 {
		t.Errorf("%d of 5 queued notifications delivered on close", rcv.received())
	}
	if n.Send(rcv.URL, successPayload()) {
		t.Error("send accepted after close")
	}
}

// TestCloseIsBounded: a testReceiver that never answers cannot hold shutdown.
func TestCloseIsBounded(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	n := New(Options{Timeout: time.Minute})
	n.Send(srv.URL, successPayload())
	n.Send(srv.URL, successPayload())
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	n.Close(ctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("close took %v with a hung testReceiver", d)
	}
}

func TestErrorsHideTheURL(t *testing.T) {
	n, res := newNotifier(t, Options{MaxRetries: 0, Timeout: time.Second})
	n.Send("http://127.0.0.1:1/services/T000/SECRETTOKEN", failurePayload())
	r := res.next(t)
	if r.Outcome != Failed || strings.Contains(r.Err.Error(), "SECRETTOKEN") || strings.Contains(r.Receiver, "SECRETTOKEN") {
		t.Errorf("result leaks the URL's token: %+v (%v)", r, r.Err)
	}
}
