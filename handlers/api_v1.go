package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tunelab/store"
	"tunelab/trainer/protocol"
)

// The account API (docs/api.md): a person's scripts read their runs, datasets and metrics
// with an API key made in Settings, "Authorization: Bearer tl_...". Keys are scoped to
// their owner: another person's ids answer 404, exactly like ids that do not exist.

type apiUserKey struct{}

func apiUser(r *http.Request) int64 { id, _ := r.Context().Value(apiUserKey{}).(int64); return id }

// apiKeyMissing is the 401 message for a request without a usable key.
const apiKeyMissing = "Send an API key as Authorization: Bearer tl_... (make one in Settings, API keys)."

// bearerAPIKey returns the request's bearer token when it has the shape of an API key.
func bearerAPIKey(r *http.Request) (string, bool) {
	token, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return token, found && store.LooksLikeAPIKey(token)
}

// apiKeyAuth admits a request only with a live API key; the key's owner goes into the
// context for the handler.
func (a *app) apiKeyAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := bearerAPIKey(r)
		if !ok {
			if !a.apiKeyFailed(w, r) {
				apiError(w, http.StatusUnauthorized, "unauthorized", apiKeyMissing)
			}
			return
		}
		userID, ok := a.checkAPIKey(w, r, key)
		if !ok || a.refuseSuspendedAPI(w, r, userID) {
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), apiUserKey{}, userID)))
	})
}

// checkAPIKey answers 401 (and records a security event) for an unknown, revoked or
// expired key, and returns the owner of a live one.
func (a *app) checkAPIKey(w http.ResponseWriter, r *http.Request, key string) (userID int64, ok bool) {
	k, err := a.store.APIKeyFor(r.Context(), key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.workerServerError(w, r, err)
		return 0, false
	}
	now := a.now()
	if err == nil && k.Active(now) {
		return k.UserID, true
	}
	if a.apiKeyFailed(w, r) {
		return 0, false
	}
	switch {
	case err != nil:
		a.recordEvent(r, store.EventAPIKeyFailed, 0, "unknown key")
		apiError(w, http.StatusUnauthorized, "unauthorized", "This API key is not valid.")
	case !k.RevokedAt.IsZero():
		a.recordEvent(r, store.EventAPIKeyFailed, k.UserID, fmt.Sprintf("revoked key %s (%s…)", k.Name, k.Prefix))
		apiError(w, http.StatusUnauthorized, "unauthorized", "This API key was revoked; make a new one in Settings.")
	default:
		a.recordEvent(r, store.EventAPIKeyFailed, k.UserID, fmt.Sprintf("expired key %s (%s…)", k.Name, k.Prefix))
		apiError(w, http.StatusUnauthorized, "unauthorized", "This API key has expired; make a new one in Settings.")
	}
	return 0, false
}

// apiKeyFailed counts a failed key check against the client's address, with the same
// limit as bad worker tokens; over it, it answers 429 and returns true.
func (a *app) apiKeyFailed(w http.ResponseWriter, r *http.Request) (limited bool) {
	ip := limitKey(a.clientIP(r))
	if blocked, wait := a.limits.tokenIP.blocked(ip); blocked {
		w.Header().Set("Retry-After", retryAfter(wait))
		apiError(w, http.StatusTooManyRequests, "rate_limited", "Too many requests with bad keys; wait and try again.")
		return true
	}
	a.limits.tokenIP.hit(ip)
	return false
}

// The JSON shapes of the API.
type (
	apiRun struct {
		ID            int64           `json:"id"`
		Name          string          `json:"name"`
		Status        string          `json:"status"`
		Reason        string          `json:"reason,omitempty"`
		Tags          []string        `json:"tags"`
		Notes         string          `json:"notes,omitempty"`
		DatasetID     int64           `json:"dataset_id"`
		EvalDatasetID int64           `json:"eval_dataset_id,omitempty"`
		Config        protocol.Config `json:"config"`
		Step          int             `json:"step"`
		TotalSteps    int             `json:"total_steps"`
		GPUSeconds    int64           `json:"gpu_seconds"`
		CreatedAt     time.Time       `json:"created_at"`
		StartedAt     *time.Time      `json:"started_at"`
		FinishedAt    *time.Time      `json:"finished_at"`
	}
	apiRunList struct {
		Runs []apiRun `json:"runs"`
		// NextBefore, when set, is the ?before= of the next (older) page.
		NextBefore string `json:"next_before,omitempty"`
	}
	apiDataset struct {
		ID        int64     `json:"id"`
		Name      string    `json:"name"`
		Format    string    `json:"format"`
		Rows      int       `json:"rows"`
		Tokens    int64     `json:"tokens"`
		SizeBytes int64     `json:"size_bytes"`
		CreatedAt time.Time `json:"created_at"`
	}
	apiDatasetList struct {
		Datasets   []apiDataset `json:"datasets"`
		NextBefore string       `json:"next_before,omitempty"`
	}
)

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (a *app) apiRunJSON(run store.Run) apiRun {
	tags := run.Tags
	if tags == nil {
		tags = []string{}
	}
	return apiRun{ID: run.ID, Name: run.Name, Status: string(run.Status), Reason: run.Reason, Tags: tags, Notes: run.Notes,
		DatasetID: run.DatasetID, EvalDatasetID: run.EvalDatasetID, Config: wireConfig(run.Config),
		Step: run.Step, TotalSteps: run.TotalSteps, GPUSeconds: int64(run.GPUTime(a.now()).Seconds()),
		CreatedAt: run.CreatedAt.UTC(), StartedAt: optTime(run.FirstHeartbeat.UTC()), FinishedAt: optTime(run.FinishedAt.UTC())}
}

func apiDatasetJSON(d store.Dataset) apiDataset {
	return apiDataset{ID: d.ID, Name: d.Name, Format: string(d.Format), Rows: d.Rows, Tokens: d.Tokens,
		SizeBytes: d.SizeBytes, CreatedAt: d.CreatedAt.UTC()}
}

// apiLimit reads ?limit= (1 to 100, default 50).
func apiLimit(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 50, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100 {
		apiError(w, http.StatusBadRequest, "invalid_field", "limit must be a number from 1 to 100.")
		return 0, false
	}
	return n, true
}

// apiPathID reads the {id} of the path; anything but a positive number is a 404.
func apiPathID(w http.ResponseWriter, r *http.Request, what string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		apiError(w, http.StatusNotFound, "not_found", "No such "+what+".")
		return 0, false
	}
	return id, true
}

// apiRunByPath returns the key owner's run of the path: 404 for anyone else's.
func (a *app) apiRunByPath(w http.ResponseWriter, r *http.Request) (store.Run, bool) {
	id, ok := apiPathID(w, r, "run")
	if !ok {
		return store.Run{}, false
	}
	run, err := a.store.Run(r.Context(), apiUser(r), id)
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", "No such run.")
		return store.Run{}, false
	}
	if err != nil {
		a.workerServerError(w, r, err)
		return store.Run{}, false
	}
	return run, true
}

// apiListRuns answers GET /api/v1/runs: newest first, ?limit= and ?before= (the
// next_before of the previous page), optional ?status=.
func (a *app) apiListRuns(w http.ResponseWriter, r *http.Request) {
	limit, ok := apiLimit(w, r)
	if !ok {
		return
	}
	f := store.RunFilter{Limit: limit}
	q := r.URL.Query()
	if v := q.Get("before"); v != "" {
		c, ok := store.ParseRunCursor(v)
		if !ok {
			apiError(w, http.StatusBadRequest, "invalid_field", "before must be the next_before of a previous page.")
			return
		}
		f.Before = &c
	}
	if v := q.Get("status"); v != "" {
		f.Status = store.RunStatus(v)
		if !f.Status.Valid() {
			apiError(w, http.StatusBadRequest, "invalid_field", "status must be one of the run statuses (queued, running, succeeded, ...).")
			return
		}
	}
	page, err := a.store.ListRuns(r.Context(), apiUser(r), f)
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	out := apiRunList{Runs: make([]apiRun, 0, len(page.Runs))}
	for _, run := range page.Runs {
		out.Runs = append(out.Runs, a.apiRunJSON(run))
	}
	if page.HasOlder && len(page.Runs) > 0 {
		out.NextBefore = page.Runs[len(page.Runs)-1].Cursor().String()
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *app) apiShowRun(w http.ResponseWriter, r *http.Request) {
	if run, ok := a.apiRunByPath(w, r); ok {
		writeJSON(w, http.StatusOK, a.apiRunJSON(run))
	}
}

// apiMetricHistory answers GET /api/v1/runs/{id}/metrics/history?name=[&from=&to=]: the
// same JSON as the run page's charts.
func (a *app) apiMetricHistory(w http.ResponseWriter, r *http.Request) {
	if run, ok := a.apiRunByPath(w, r); ok {
		a.writeMetricHistory(w, r, run.ID, a.workerServerError)
	}
}

// apiListDatasets answers GET /api/v1/datasets: newest first, ?limit= and ?before=.
func (a *app) apiListDatasets(w http.ResponseWriter, r *http.Request) {
	limit, ok := apiLimit(w, r)
	if !ok {
		return
	}
	var before int64
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			apiError(w, http.StatusBadRequest, "invalid_field", "before must be the next_before of a previous page.")
			return
		}
		before = n
	}
	page, err := a.store.ListDatasets(r.Context(), apiUser(r), before, 0, limit)
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	out := apiDatasetList{Datasets: make([]apiDataset, 0, len(page.Datasets))}
	for _, d := range page.Datasets {
		out.Datasets = append(out.Datasets, apiDatasetJSON(d))
	}
	if page.HasOlder && len(page.Datasets) > 0 {
		out.NextBefore = strconv.FormatInt(page.Datasets[len(page.Datasets)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *app) apiShowDataset(w http.ResponseWriter, r *http.Request) {
	id, ok := apiPathID(w, r, "dataset")
	if !ok {
		return
	}
	d, err := a.store.Dataset(r.Context(), apiUser(r), id)
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", "No such dataset.")
		return
	}
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiDatasetJSON(d))
}
