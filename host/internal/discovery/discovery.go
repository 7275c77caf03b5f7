// Package discovery watches the Docker engine for containers that carry
// backup labels. It is level-triggered: on start, on every relevant event,
// on a fixed interval and after every reconnect it re-lists the running
// containers and hands the complete set to its consumer, which converges
// its jobs on it. A missed event therefore costs at most one interval.
package discovery

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"

	"github.com/labelbackup/label-backup/host/internal/labels"
)

// Container is a running container that carries backup.enabled.
type Container struct {
	ID     string
	Name   string
	Labels map[string]string
}

// Engine is the part of the Docker client discovery uses.
type Engine interface {
	ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
	Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error)
}

// Pinger checks the engine answers.
type Pinger interface {
	Ping(ctx context.Context) (types.Ping, error)
}

// Watcher produces snapshots of labeled running containers.
type Watcher struct {
	engine   Engine
	interval atomic.Int64 // time.Duration; changes on reload
	logger   hclog.Logger
	// debounce gathers bursts of events (a compose up starts many
	// containers at once) into one re-list.
	debounce   time.Duration
	maxBackoff time.Duration

	connected atomic.Bool // for logging changes only
}

// New returns a Watcher re-listing at least every interval.
func New(engine Engine, interval time.Duration, logger hclog.Logger) *Watcher {
	w := &Watcher{engine: engine, logger: logger, debounce: 100 * time.Millisecond, maxBackoff: 30 * time.Second}
	w.interval.Store(int64(interval))
	return w
}

// SetInterval changes the reconcile interval from the next tick on.
func (w *Watcher) SetInterval(d time.Duration) { w.interval.Store(int64(d)) }

// NewClient connects to the Docker engine named by the environment
// (DOCKER_HOST, or the default socket), negotiating the API version so old
// engines work too.
func NewClient() (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return c, nil
}

// Run sends snapshots to out until ctx is done. When the engine goes away it
// reconnects with exponential backoff (1 s doubling to 30 s) and sends a
// fresh snapshot as soon as it is back, so containers removed meanwhile
// drop out.
func (w *Watcher) Run(ctx context.Context, out chan<- []Container) error {
	backoff := time.Second
	for {
		err := w.session(ctx, out, func() { backoff = time.Second })
		w.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		w.logger.Warn("docker engine unreachable; retrying", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.maxBackoff)
	}
}

// session subscribes to events, lists, and then re-lists on events and
// ticks until the engine connection fails.
func (w *Watcher) session(ctx context.Context, out chan<- []Container, connected func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribe before listing so no change between the two is missed.
	msgs, errs := w.engine.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", labels.Enabled),
	)})
	if err := w.list(ctx, out); err != nil {
		return err
	}
	if !w.connected.Swap(true) {
		w.logger.Info("connected to the docker engine")
	}
	connected()

	every := time.Duration(w.interval.Load())
	tick := time.NewTicker(every)
	defer tick.Stop()
	var pending <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			if err == nil {
				err = fmt.Errorf("event stream closed")
			}
			return fmt.Errorf("docker events: %w", err)
		case m := <-msgs:
			if relevant(m) && pending == nil {
				pending = time.After(w.debounce)
			}
		case <-pending:
			pending = nil
			if err := w.list(ctx, out); err != nil {
				return err
			}
		case <-tick.C:
			if d := time.Duration(w.interval.Load()); d != every {
				every = d
				tick.Reset(d)
			}
			if err := w.list(ctx, out); err != nil {
				return err
			}
		}
	}
}

// relevant reports whether an event can change the set of running labeled
// containers or their names. Exec and health events cannot.
func relevant(m events.Message) bool {
	a := string(m.Action)
	// create: a created container is not running yet; its start event
	// follows. Listing on create only delays the list that sees it.
	return !strings.HasPrefix(a, "exec_") && !strings.HasPrefix(a, "health_status") && a != "top" && a != "attach" && a != "resize" && a != "create"
}

func (w *Watcher) list(ctx context.Context, out chan<- []Container) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := w.engine.ContainerList(ctx, container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", labels.Enabled), filters.Arg("status", "running")),
	})
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	snap := make([]Container, 0, len(list))
	for _, c := range list {
		snap = append(snap, Container{ID: c.ID, Name: name(c.Names), Labels: c.Labels})
	}
	sort.Slice(snap, func(i, j int) bool { return snap[i].Name < snap[j].Name })
	select {
	case out <- snap:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// name picks the container's own name: Docker lists links as extra names
// ("/other/alias"), the real one has a single slash.
func name(names []string) string {
	for _, n := range names {
		if strings.Count(n, "/") == 1 {
			return strings.TrimPrefix(n, "/")
		}
	}
	if len(names) > 0 {
		return strings.TrimPrefix(names[0], "/")
	}
	return ""
}
