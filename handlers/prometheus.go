package handlers

// Operator metrics of the ingest path.

// ingested counts points acknowledged as stored.
func (a *app) ingested(n int) {}

// ingestRefused counts a refused batch by reason (busy, run_busy, quota_series, quota_points).
func (a *app) ingestRefused(reason string) {}
