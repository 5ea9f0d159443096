package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/views"
)

// The user metrics API: a person's own code posts points to their run with a per-run
// token made on /runs/{id}/api (until account API keys exist). Same body and answers as
// the worker API's metrics endpoint.

func (a *app) runAPIPage(r *http.Request, run store.Run, token string) views.RunAPI {
	scheme := "http"
	if a.cfg.Secure || r.TLS != nil {
		scheme = "https"
	}
	endpoint := fmt.Sprintf("%s://%s/api/v1/runs/%d/metrics", scheme, r.Host, run.ID)
	shown := token
	if shown == "" {
		shown = "YOUR_TOKEN"
	}
	return views.RunAPI{
		Name: run.Name, RunURL: fmt.Sprintf("/runs/%d", run.ID),
		CreateURL: fmt.Sprintf("/runs/%d/api/token", run.ID), Token: token, Endpoint: endpoint,
		Curl: fmt.Sprintf("curl -X POST %s \\\n  -H 'Authorization: Bearer %s' \\\n  -d '{\"points\":[{\"name\":\"my_eval/accuracy\",\"step\":100,\"value\":0.82}]}'",
			endpoint, shown),
		Python: fmt.Sprintf(`import requests

def log(points):
    r = requests.post(%q,
                      headers={"Authorization": "Bearer %s"},
                      json={"points": points}, timeout=30)
    r.raise_for_status()

log([{"name": "my_eval/accuracy", "step": 100, "value": 0.82}])`, endpoint, shown),
	}
}

func (a *app) showRunAPI(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	p := a.runAPIPage(r, run, "")
	p.HasToken = run.HasIngestToken
	a.render(w, r, http.StatusOK, a.page(r, "Metrics API", "runs"), views.RunAPIPage(p))
}

// createIngestToken makes a new token (the old one stops working) and shows it once.
func (a *app) createIngestToken(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	token, hash := gpu.NewRunToken()
	if err := a.store.SetRunIngestToken(r.Context(), run.UserID, run.ID, hash); err != nil {
		a.serverError(w, r, err)
		return
	}
	p := a.runAPIPage(r, run, token)
	a.render(w, r, http.StatusOK, a.page(r, "Metrics API", "runs"), views.RunAPIPage(p))
}

type ingestRunKey struct{}

// ingestAuth admits a request only with the metrics token of the run in its path.
func (a *app) ingestAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, runID, token, ok := a.bearerRequest(w, r, "Send the run's metrics token as Authorization: Bearer <token> (make one on the run's API page).")
		if !ok {
			return
		}
		owner, err := a.store.RunForIngestToken(r.Context(), gpu.RunTokenHash(token))
		switch {
		case err == nil && owner == runID: // found by its hash: the token itself is never compared
			ctx := context.WithValue(r.Context(), ingestRunKey{}, runID)
			next.ServeHTTP(w, r.WithContext(ctx))
		case err == nil:
			a.limits.workerAuthIP.hit(ip)
			a.recordEvent(r, store.EventWorkerMisuse, 0, fmt.Sprintf("run %d metrics token used on run %d", owner, runID))
			apiError(w, http.StatusForbidden, "forbidden", "This token belongs to a different run.")
		case errors.Is(err, store.ErrNotFound):
			a.limits.workerAuthIP.hit(ip)
			apiError(w, http.StatusUnauthorized, "unauthorized", "The token is not valid (it may have been replaced, or the run deleted).")
		default:
			a.workerServerError(w, r, err)
		}
	})
}

func (a *app) userMetrics(w http.ResponseWriter, r *http.Request) {
	runID, _ := r.Context().Value(ingestRunKey{}).(int64)
	a.ingestMetrics(w, r, runID)
}
