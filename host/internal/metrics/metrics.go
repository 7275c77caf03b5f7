// Package metrics defines the agent's Prometheus metrics on a registry of
// its own (no global state) and records what the other components report.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const ns = "labelbackup"

// Metrics holds every metric the agent exports.
type Metrics struct {
	reg *prometheus.Registry

	backups         *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	size            *prometheus.GaugeVec
	lastSuccess     *prometheus.GaugeVec
	retentionDelete *prometheus.CounterVec
	webhooks        *prometheus.CounterVec
	breakerOpen     *prometheus.GaugeVec
}

// Gauges are live values read at scrape time.
type Gauges struct {
	Queued, Running, Jobs, Rejected func() float64
	// Freshness lists, per container, whether its backups are stale and
	// when the next success is due.
	Freshness func() []Fresh
}

// Fresh is one container's freshness.
type Fresh struct {
	Container string
	Stale     bool
	DueBy     time.Time
}

// New registers every metric. Gauges' functions are called on each scrape.
func New(g Gauges) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		backups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "backups_total",
			Help: "Backup runs by container and result (success, failure, skipped).",
		}, []string{"container", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "backup_duration_seconds",
			Help:    "Duration of backup runs.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 14), // 0.5 s .. ~68 min
		}, []string{"container"}),
		size: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "backup_size_bytes",
			Help: "Stored size of the last successful backup.",
		}, []string{"container"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "last_success_timestamp_seconds",
			Help: "Unix time of the last successful backup.",
		}, []string{"container"}),
		retentionDelete: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "retention_deleted_total",
			Help: "Backups deleted by retention (dry runs not counted).",
		}, []string{"container"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "webhook_notifications_total",
			Help: "Webhook notifications by outcome (delivered, failed, dropped).",
		}, []string{"outcome"}),
		breakerOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "webhook_breaker_open",
			Help: "1 while a receiver's circuit breaker is open (receiver URL redacted).",
		}, []string{"receiver"}),
	}
	m.reg.MustRegister(m.backups, m.duration, m.size, m.lastSuccess, m.retentionDelete, m.webhooks, m.breakerOpen,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for name, f := range map[string]struct {
		help string
		fn   func() float64
	}{
		"queued_backups":      {"Due backups waiting for a concurrency slot.", g.Queued},
		"running_backups":     {"Backups running now.", g.Running},
		"scheduled_jobs":      {"Containers with a scheduled backup.", g.Jobs},
		"rejected_containers": {"Labeled containers skipped because of label errors.", g.Rejected},
	} {
		if f.fn != nil {
			m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: f.help}, f.fn))
		}
	}
	if g.Freshness != nil {
		m.reg.MustRegister(freshnessCollector{g.Freshness})
	}
	return m
}

// freshnessCollector computes freshness at scrape time, so containers that
// went away leave no stale series behind.
type freshnessCollector struct{ fn func() []Fresh }

var (
	staleDesc = prometheus.NewDesc(ns+"_backup_stale",
		"1 when a container's last successful backup is older than its schedule allows.", []string{"container"}, nil)
	dueDesc = prometheus.NewDesc(ns+"_backup_due_by_timestamp_seconds",
		"Unix time by which a newer successful backup must exist.", []string{"container"}, nil)
)

func (c freshnessCollector) Describe(ch chan<- *prometheus.Desc) { ch <- staleDesc; ch <- dueDesc }

func (c freshnessCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.fn() {
		v := 0.0
		if f.Stale {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.GaugeValue, v, f.Container)
		ch <- prometheus.MustNewConstMetric(dueDesc, prometheus.GaugeValue, float64(f.DueBy.Unix()), f.Container)
	}
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Backup records one run's outcome.
func (m *Metrics) Backup(container, result string, d time.Duration, size int64, at time.Time) {
	m.backups.WithLabelValues(container, result).Inc()
	if result == "skipped" {
		return
	}
	m.duration.WithLabelValues(container).Observe(d.Seconds())
	if result == "success" {
		m.size.WithLabelValues(container).Set(float64(size))
		m.lastSuccess.WithLabelValues(container).Set(float64(at.Unix()))
	}
}

// RetentionDeleted counts backups retention removed.
func (m *Metrics) RetentionDeleted(container string, n int) {
	m.retentionDelete.WithLabelValues(container).Add(float64(n))
}

// Webhook records a notification's outcome and its receiver's breaker.
func (m *Metrics) Webhook(receiver, outcome string, breakerOpen bool) {
	m.webhooks.WithLabelValues(outcome).Inc()
	v := 0.0
	if breakerOpen {
		v = 1
	}
	m.breakerOpen.WithLabelValues(receiver).Set(v)
}
