package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tunelab/store"
)

// Operator metrics in the Prometheus text format: GET /metrics with
// Authorization: Bearer <TUNELAB_METRICS_TOKEN>. Without a configured token the endpoint
// does not exist (404).

type opsMetrics struct {
	reg            *prometheus.Registry
	points         prometheus.Counter
	refused        *prometheus.CounterVec
	streamsRefused prometheus.Counter
	latency        *prometheus.HistogramVec
	viewers        prometheus.Gauge
	tokenSum       [sha256.Size]byte // of the operator token; zero when none is configured
}

func newOpsMetrics(st *store.Store, token string) *opsMetrics {
	m := &opsMetrics{
		reg: prometheus.NewRegistry(),
		points: prometheus.NewCounter(prometheus.CounterOpts{Name: "tunelab_ingest_points_total",
			Help: "Metric points acknowledged as durably stored."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tunelab_ingest_refused_batches_total",
			Help: "Metric batches refused whole: busy (queue full), run_busy (the run's share of the queue), quota_series, quota_points."}, []string{"reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tunelab_http_request_duration_seconds",
			Help: "Time to answer HTTP requests, by route pattern (a run event stream counts until it is open and taken over from net/http over HTTP/1.1, until it closes over HTTP/2).", Buckets: prometheus.DefBuckets},
			[]string{"route"}),
		streamsRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "tunelab_sse_refused_total",
			Help: "Live run streams refused because their person already held TUNELAB_QUOTA_STREAMS open."}),
		viewers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tunelab_sse_viewers", Help: "Open live event streams of run pages."}),
	}
	if token != "" {
		m.tokenSum = sha256.Sum256([]byte(token))
	}
	m.reg.MustRegister(m.points, m.refused, m.streamsRefused, m.latency, m.viewers)
	if st != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tunelab_ingest_queue_depth",
			Help: "Metric batches waiting for the database writer."}, func() float64 { return float64(st.IngestQueueDepth()) }))
		m.reg.MustRegister(storeCollector{st})
	}
	return m
}

var (
	groupSizeDesc = prometheus.NewDesc("tunelab_ingest_group_commit_points", "Points written by each group commit (one transaction, one fsync).", nil, nil)
	runsDesc      = prometheus.NewDesc("tunelab_runs", "Runs that are not deleted, by status.", []string{"status"}, nil)
)

// storeCollector reads the store's figures at scrape time.
type storeCollector struct{ st *store.Store }

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- groupSizeDesc; ch <- runsDesc }

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.st.IngestStats()
	buckets := make(map[float64]uint64, len(store.GroupSizeBuckets))
	for i, b := range store.GroupSizeBuckets {
		buckets[b] = s.AtMost[i]
	}
	ch <- prometheus.MustNewConstHistogram(groupSizeDesc, s.Groups, float64(s.Points), buckets)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if byStatus, err := c.st.RunsByStatus(ctx); err == nil {
		for status, n := range byStatus {
			ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(n), status)
		}
	}
}

// showMetrics serves the registry to the operator.
func (a *app) showMetrics(w http.ResponseWriter, r *http.Request) {
	if a.ops.tokenSum == [sha256.Size]byte{} {
		a.notFound(w, r)
		return
	}
	token, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sum := sha256.Sum256([]byte(token))
	if !found || subtle.ConstantTimeCompare(sum[:], a.ops.tokenSum[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tunelab metrics"`)
		apiError(w, http.StatusUnauthorized, "unauthorized", "Send the operator token (TUNELAB_METRICS_TOKEN) as Authorization: Bearer <token>.")
		return
	}
	promhttp.HandlerFor(a.ops.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// observeRequests times every request under the route pattern the mux matched; it sits
// right outside the mux, which records the pattern on this same request.
func (a *app) observeRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		a.ops.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// ingested counts points acknowledged as stored.
func (a *app) ingested(n int) { a.ops.points.Add(float64(n)) }

// ingestRefused counts a refused batch by reason (busy, run_busy, quota_series, quota_points).
func (a *app) ingestRefused(reason string) { a.ops.refused.WithLabelValues(reason).Inc() }
