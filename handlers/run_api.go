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
// token made on /runs/{id}/api, or with an account API key. Same body and answers as the
// worker API's metrics endpoint.

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

// ingestTokenKey is the session key that carries a new metrics token from the POST that
// made it to the one GET that shows it.
func ingestTokenKey(runID int64) string { return fmt.Sprintf("ingest_token_%d", runID) }

// showRunAPI explains the API; right after a new token was made it shows that token, once
// (taken out of the session as it is shown, so a reload does not show it again).
func (a *app) showRunAPI(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	token := a.sessions.PopString(r.Context(), ingestTokenKey(run.ID))
	p := a.runAPIPage(r, run, token)
	p.HasToken = run.HasIngestToken
	if token != "" {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set(noCompressHeader, "1") // a secret is never compressed (BREACH)
	}
	a.render(w, r, http.StatusOK, a.page(r, "Metrics API", "runs"), views.RunAPIPage(p))
}

// createIngestToken makes a new token (the old one stops working) and redirects to the
// page that shows it once: a reload of that page neither re-posts nor replaces the token.
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
	a.sessions.Put(r.Context(), ingestTokenKey(run.ID), token)
	redirect(w, r, fmt.Sprintf("/runs/%d/api", run.ID))
}

type ingestRunKey struct{}

// ingestAuth admits a request only with the metrics token of the run in its path, or with
// an API key of the run's owner (another person's run is then a 404).
func (a *app) ingestAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key, ok := bearerAPIKey(r); ok {
			id, ok := apiPathID(w, r, "run")
			if !ok {
				return
			}
			userID, ok := a.checkAPIKey(w, r, key)
			if !ok {
				return
			}
			if _, err := a.store.Run(r.Context(), userID, id); errors.Is(err, store.ErrNotFound) {
				apiError(w, http.StatusNotFound, "not_found", "No such run.")
				return
			} else if err != nil {
				a.workerServerError(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ingestRunKey{}, id)))
			return
		}
		runID, token, ok := a.bearerRequest(w, r, "Send the run's metrics token as Authorization: Bearer <token> (make one on the run's API page).")
		if !ok {
			return
		}
		owner, err := a.store.RunForIngestToken(r.Context(), gpu.RunTokenHash(token))
		switch {
		case err == nil && owner == runID: // found by its hash: the token itself is never compared
			ctx := context.WithValue(r.Context(), ingestRunKey{}, runID)
			next.ServeHTTP(w, r.WithContext(ctx))
		case err != nil && !errors.Is(err, store.ErrNotFound):
			a.workerServerError(w, r, err)
		case a.tokenFailed(w, r, runID):
		case err == nil:
			a.recordEvent(r, store.EventWorkerMisuse, 0, fmt.Sprintf("run %d metrics token used on run %d", owner, runID))
			apiError(w, http.StatusForbidden, "forbidden", "This token belongs to a different run.")
		default:
			apiError(w, http.StatusUnauthorized, "unauthorized", "The token is not valid (it may have been replaced, or the run deleted).")
		}
	})
}

func (a *app) userMetrics(w http.ResponseWriter, r *http.Request) {
	runID, _ := r.Context().Value(ingestRunKey{}).(int64)
	a.ingestMetrics(w, r, runID)
}
