package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"tunelab/store"
	"tunelab/trainer/protocol"
)

// The deployment half of the worker API (docs/worker-api.md, "Deployments"): the serve job
// of a worker deployment gets its spec and snapshot, reports its inference server's URL
// and health, sends log lines, and finishes. One bearer token per deployment, with the
// same rules as a run's.

const maxServeURL = 300

type workerDeploymentKey struct{}

func workerDeployment(r *http.Request) int64 {
	id, _ := r.Context().Value(workerDeploymentKey{}).(int64)
	return id
}

// deployWorkerAuth lets a request through only with the live token of the deployment in
// its path. A foreign or dead token is 401, counted against the address like a run's.
func (a *app) deployWorkerAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, token, ok := a.bearerRequest(w, r, "Send the deployment's token as Authorization: Bearer <token>.")
		if !ok {
			return
		}
		sum := sha256.Sum256([]byte(token))
		want, err := a.store.DeploymentTokenHash(r.Context(), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			apiError(w, http.StatusInternalServerError, "internal", "Try again later.")
			return
		}
		if len(want) == len(sum) && subtle.ConstantTimeCompare(want, sum[:]) == 1 {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), workerDeploymentKey{}, id)))
			return
		}
		if a.tokenFailed(w, r, -id) { // negative: not the run with that number
			return
		}
		apiError(w, http.StatusUnauthorized, "unauthorized", "The token is not valid for a live deployment (its job may have ended).")
	})
}

// serveKeyPurpose binds a sealed serve key to its deployment.
func serveKeyPurpose(id int64) string { return "serve key of deployment " + strconv.FormatInt(id, 10) }

// serveKey opens a deployment's sealed serve key.
func (a *app) serveKey(d store.Deployment) (string, error) {
	if d.Job.ServeKeySealed == nil {
		return "", errors.New("the deployment has no serve key")
	}
	k, err := a.vault.OpenSecret(serveKeyPurpose(d.ID), d.Job.ServeKeySealed)
	return string(k), err
}

func (a *app) deployWorkerJob(w http.ResponseWriter, r *http.Request) {
	id := workerDeployment(r)
	d, err := a.store.WorkerDeployment(r.Context(), id)
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	sn, method, err := a.store.DeploymentSnapshot(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", "The snapshot this deployment serves was deleted.")
		return
	}
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	key, err := a.serveKey(d)
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, protocol.ServeJob{
		DeploymentID: id, Model: d.Name, BaseModel: sn.BaseModel, Method: method, GPUType: d.Job.GPUType,
		Snapshot: protocol.InitSnapshot{URL: fmt.Sprintf("%s%d/snapshot", protocol.DeployPathPrefix, id),
			RunID: sn.RunID, Step: sn.Step, SHA256: sn.SHA256, SizeBytes: sn.SizeBytes},
		APIKey: key, MaxTokens: openaiMaxTokens, HeartbeatIntervalSeconds: float64(int(a.runs.HeartbeatInterval.Seconds())),
	})
}

// deployWorkerSnapshot streams the served snapshot, decrypted, as the training worker
// uploaded it.
func (a *app) deployWorkerSnapshot(w http.ResponseWriter, r *http.Request) {
	sn, _, err := a.store.DeploymentSnapshot(r.Context(), workerDeployment(r))
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", "The snapshot this deployment serves was deleted.")
		return
	}
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	a.sendWorkerSnapshot(w, r, sn.Snapshot, "The snapshot this deployment serves is gone.", "deployment", workerDeployment(r))
}

// serveURLProblem says what is wrong with a reported inference server URL ("" when fine).
func serveURLProblem(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if len(raw) > maxServeURL || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf(`url must be "" or an http:// or https:// URL with a host and no path, query or credentials, at most %d bytes.`, maxServeURL)
	}
	return ""
}

func (a *app) deployWorkerHeartbeat(w http.ResponseWriter, r *http.Request) {
	var in protocol.ServeHeartbeat
	if !decodeStrict(w, r, &in) {
		return
	}
	if p := serveURLProblem(in.URL); p != "" {
		apiError(w, http.StatusBadRequest, "invalid_field", p)
		return
	}
	if len(in.Detail) > maxFinishReason {
		apiError(w, http.StatusBadRequest, "invalid_field", fmt.Sprintf("detail must be at most %d bytes.", maxFinishReason))
		return
	}
	id := workerDeployment(r)
	healthy := in.Healthy && in.URL != ""
	stop, err := a.store.DeploymentHeartbeat(r.Context(), id, strings.TrimRight(in.URL, "/"), healthy,
		strings.ToValidUTF8(in.Detail, "\uFFFD"), a.now())
	if errors.Is(err, store.ErrRunFinished) {
		apiError(w, http.StatusConflict, protocol.CodeDeploymentEnded, "The deployment's job has already ended.")
		return
	}
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	if !stop {
		if stop, err = a.deploymentBillingStop(r.Context(), id); err != nil {
			a.workerServerError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, protocol.ServeHeartbeatReply{Stop: stop})
}

// deploymentBillingStop asks the deployment to stop when its owner's billing says so (a
// failed payment past its grace, an unpaid subscription, the monthly cap reached), as a
// running run would be.
func (a *app) deploymentBillingStop(ctx context.Context, id int64) (bool, error) {
	if !a.billing.Enabled() {
		return false, nil
	}
	d, err := a.store.WorkerDeployment(ctx, id)
	if err != nil {
		return false, err
	}
	// Billing counts the ledger plus a live run's time since its first heartbeat: the
	// deployment's time not yet in the ledger is passed as such a run's.
	recorded, err := a.store.DeploymentSeconds(ctx, id)
	if err != nil {
		return false, err
	}
	now := a.now()
	unrecorded := max(d.GPUTime(now)-time.Duration(recorded)*time.Second, 0)
	reason, err := a.billing.StopReason(ctx, store.Run{UserID: d.UserID, Status: store.RunRunning,
		FirstHeartbeat: now.Add(-unrecorded), Config: store.RunConfig{GPUType: d.Job.GPUType}})
	if err != nil || reason == "" {
		return false, err
	}
	if _, err := a.store.AskDeploymentStop(ctx, id, reason, now); err != nil {
		return false, err
	}
	a.log.InfoContext(ctx, "deployment asked to stop", "deployment", id, "why", reason)
	return true, nil
}

func (a *app) deployWorkerLogs(w http.ResponseWriter, r *http.Request) {
	var in protocol.LogBatch
	if !decodeStrict(w, r, &in) {
		return
	}
	if len(in.Lines) == 0 || len(in.Lines) > maxLogLines {
		apiError(w, http.StatusBadRequest, "invalid_field", fmt.Sprintf("lines must hold 1 to %d lines.", maxLogLines))
		return
	}
	for i, l := range in.Lines {
		in.Lines[i] = strings.ToValidUTF8(strings.ReplaceAll(l, "\n", " "), "\uFFFD")
	}
	if err := a.store.AppendDeploymentLog(r.Context(), workerDeployment(r), in.Lines); err != nil {
		a.workerServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, protocol.LogsReply{Accepted: len(in.Lines)})
}

func (a *app) deployWorkerFinish(w http.ResponseWriter, r *http.Request) {
	var in protocol.Finish
	if !decodeStrict(w, r, &in) {
		return
	}
	if in.Status != protocol.ServeStopped && in.Status != protocol.ServeFailed {
		apiError(w, http.StatusBadRequest, "invalid_field", `status must be "stopped" or "failed".`)
		return
	}
	if len(in.Reason) > maxFinishReason {
		apiError(w, http.StatusBadRequest, "invalid_field", fmt.Sprintf("reason must be at most %d bytes.", maxFinishReason))
		return
	}
	reason := strings.ToValidUTF8(in.Reason, "\uFFFD")
	if reason == "" && in.Status == protocol.ServeStopped {
		reason = "stopped"
	}
	err := a.store.EndDeployment(r.Context(), workerDeployment(r), in.Status == protocol.ServeFailed, reason, a.now())
	if errors.Is(err, store.ErrRunFinished) {
		apiError(w, http.StatusConflict, protocol.CodeDeploymentEnded, "The deployment's job has already ended.")
		return
	}
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	a.billing.WakeMeter()
	writeJSON(w, http.StatusOK, protocol.FinishReply{Status: in.Status})
}

// deployWorkerRoutes adds the deployment half of the worker API.
func (a *app) deployWorkerRoutes(mux *http.ServeMux) {
	dw := chain{a.deployWorkerAuth}
	p := "/api/v1/worker/deployments/{id}/"
	mux.Handle("GET "+p+"job", dw.thenFunc(a.deployWorkerJob))
	mux.Handle("GET "+p+"snapshot", dw.thenFunc(a.deployWorkerSnapshot))
	mux.Handle("POST "+p+"heartbeat", dw.thenFunc(a.deployWorkerHeartbeat))
	mux.Handle("POST "+p+"logs", dw.thenFunc(a.deployWorkerLogs))
	mux.Handle("POST "+p+"finish", dw.thenFunc(a.deployWorkerFinish))
}
