// Package readiness runs the agent's readiness checks in the background
// and serves their last results, so a probe never waits on a slow storage.
package readiness

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Check is one named readiness condition.
type Check struct {
	Name string
	// Fn returns nil when the condition holds. It gets a bounded context.
	Fn func(ctx context.Context) error
}

// Result is one check's outcome.
type Result struct {
	Name    string    `json:"name"`
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	Checked time.Time `json:"checked"`
}

// Checker runs checks on an interval.
type Checker struct {
	checks   []Check
	interval time.Duration
	timeout  time.Duration

	mu      sync.Mutex
	results []Result
	ran     chan struct{} // closed after the first round
	once    sync.Once
}

// New returns a Checker; call Run to start it.
func New(interval, timeout time.Duration, checks ...Check) *Checker {
	return &Checker{checks: checks, interval: interval, timeout: timeout, ran: make(chan struct{})}
}

// Run checks now and then every interval until ctx is done.
func (c *Checker) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh runs every check concurrently and stores the results.
func (c *Checker) Refresh(ctx context.Context) {
	results := make([]Result, len(c.checks))
	var wg sync.WaitGroup
	for i, ch := range c.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			err := ch.Fn(cctx)
			results[i] = Result{Name: ch.Name, OK: err == nil, Checked: time.Now().UTC()}
			if err != nil {
				results[i].Error = err.Error()
			}
		}()
	}
	wg.Wait()
	sort.Slice(results, func(a, b int) bool { return results[a].Name < results[b].Name })
	c.mu.Lock()
	c.results = results
	c.mu.Unlock()
	c.once.Do(func() { close(c.ran) })
}

// Status returns the last results, waiting for the first round if needed
// (up to ctx). Ready is true when every check passed.
func (c *Checker) Status(ctx context.Context) (ready bool, results []Result) {
	select {
	case <-c.ran:
	case <-ctx.Done():
		return false, []Result{{Name: "readiness", Error: "checks have not completed yet"}}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ready = true
	for _, r := range c.results {
		ready = ready && r.OK
	}
	return ready, append([]Result(nil), c.results...)
}

// Lines renders results as one line per check, failures first.
func Lines(results []Result) []string {
	var bad, good []string
	for _, r := range results {
		if r.OK {
			good = append(good, fmt.Sprintf("ok   %s", r.Name))
		} else {
			bad = append(bad, fmt.Sprintf("FAIL %s: %s", r.Name, r.Error))
		}
	}
	return append(bad, good...)
}
