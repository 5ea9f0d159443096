package store

import "fmt"

// Per-account quotas (TUNELAB_QUOTA_*): each is checked inside the transaction that would
// pass it, on the single writer connection, so concurrent requests cannot overshoot.

// Quota names, as QuotaError.Quota.
const (
	QuotaQueuedRuns   = "queued runs"
	QuotaDatasetBytes = "dataset storage"
)

// DefaultQuotaQueuedRuns and DefaultQuotaDatasetBytes are the quotas when none is configured.
const (
	DefaultQuotaQueuedRuns   = 20
	DefaultQuotaDatasetBytes = 5_000_000_000 // 5 GB
)

// QuotaError refuses a request that would take a person past one of their quotas.
type QuotaError struct {
	Quota string // QuotaQueuedRuns or QuotaDatasetBytes
	Used  int64  // queued runs, or bytes of datasets stored, before this request
	Limit int64
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("store: over the %s quota (%d used, limit %d)", e.Quota, e.Used, e.Limit)
}
