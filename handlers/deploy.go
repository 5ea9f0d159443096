package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/trainer"
	"tunelab/views"
)

// Deployments: one click on a snapshot makes it callable through the OpenAI-compatible API
// (openai.go) under the model id "tl-<run>-<step>". A snapshot of the built-in model is
// served in this process; any other (a Python-worker snapshot) by an inference server
// that a serve job on its run's backend starts (deploy_worker_api.go, gpu/deploy_follow.go),
// with /v1 requests proxied to it (deploy_proxy.go).

// deployButton is the run page's Deploy action for one snapshot.
func deployButton(run store.Run, s store.Snapshot) views.DeployButton {
	return views.DeployButton{Action: fmt.Sprintf("/runs/%d/snapshots/%d/deploy", run.ID, s.ID)}
}

// deploymentName is the model id of a deployment.
func deploymentName(runID int64, step int) string { return fmt.Sprintf("tl-%d-%d", runID, step) }

func (a *app) deploySnapshot(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	runID, err1 := strconv.ParseInt(r.PathValue("id"), 10, 64)
	sid, err2 := strconv.ParseInt(r.PathValue("sid"), 10, 64)
	if err1 != nil || err2 != nil {
		a.notFound(w, r)
		return
	}
	sn, err := a.store.PlaygroundSnapshotByID(r.Context(), u.ID, sid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && sn.RunID != runID) {
		a.notFound(w, r)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	var dep store.Deployment
	if _, ok := trainer.BaseModelByID(sn.BaseModel); ok {
		dep, err = a.store.CreateDeployment(r.Context(), u.ID, sn.ID, deploymentName(sn.RunID, sn.Step), a.now())
	} else {
		// A GPU deployment uses GPU time: billing may refuse it as it refuses new runs.
		if block, err := a.billing.RunBlock(r.Context(), u.ID); err != nil {
			a.serverError(w, r, err)
			return
		} else if block.Blocked() {
			a.errorPage(w, r, http.StatusPaymentRequired, "Cannot deploy on a GPU now", block.Reason)
			return
		}
		dep, err = a.createWorkerDeployment(r, u.ID, sn)
	}
	if errors.Is(err, store.ErrDeploymentExists) { // deploying twice keeps the live one
		redirect(w, r, "/deployments")
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.audit(r, store.AuditDeploymentCreated, u.ID, u.ID, fmt.Sprintf("deployment %d of run %d snapshot %d", dep.ID, sn.RunID, sn.ID))
	redirect(w, r, "/deployments")
}

func (a *app) showDeployments(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	deps, err := a.store.Deployments(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	d := views.Deployments{BaseURL: a.mailLinkBase(), KeysURL: "/settings/api-keys"}
	example := trainer.BaseModels[0].ID
	for _, dep := range deps {
		row := a.deploymentRow(dep)
		if row.StopURL != "" && example == trainer.BaseModels[0].ID {
			example = dep.Name
		}
		d.Rows = append(d.Rows, row)
	}
	d.Example = fmt.Sprintf(`curl %s/v1/chat/completions \
  -H "Authorization: Bearer tl_..." \
  -H "Content-Type: application/json" \
  -d '{"model": "%s", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 40, "temperature": 0}'`, d.BaseURL, example)
	a.render(w, r, http.StatusOK, a.page(r, "Deployments", "deployments"), views.DeploymentsPage(d))
}

func (a *app) stopDeployment(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		a.notFound(w, r)
		return
	}
	err = a.store.StopDeployment(r.Context(), u.ID, id, a.now())
	if errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.audit(r, store.AuditDeploymentStopped, u.ID, u.ID, fmt.Sprintf("deployment %d", id))
	a.wake() // a serve job hears the stop at its next heartbeat; the dispatcher enforces it
	redirect(w, r, "/deployments")
}

// createWorkerDeployment records a deployment of a Python-worker snapshot, served by a job
// on its run's backend with the run's GPU type; the dispatcher submits the job.
func (a *app) createWorkerDeployment(r *http.Request, userID int64, sn store.PlaygroundSnapshot) (store.Deployment, error) {
	run, err := a.store.RunByID(r.Context(), sn.RunID)
	if err != nil {
		return store.Deployment{}, err
	}
	dep, err := a.store.CreateWorkerDeployment(r.Context(), store.NewWorkerDeployment{UserID: userID, SnapshotID: sn.ID,
		Name: deploymentName(sn.RunID, sn.Step), Backend: run.Backend, GPUType: run.Config.GPUType}, a.now())
	if err != nil {
		return dep, err
	}
	// The serve key is sealed under the deployment's id, so it is set once the row exists.
	key, _ := gpu.NewRunToken()
	sealed, err := a.vault.SealSecret(serveKeyPurpose(dep.ID), []byte(key))
	if err == nil {
		err = a.store.SetDeploymentServeKey(r.Context(), dep.ID, sealed)
	}
	if err != nil {
		_ = a.store.EndDeployment(r.Context(), dep.ID, true, "could not make its serve key", a.now())
		return dep, err
	}
	a.wake()
	return dep, nil
}

// deploymentStates labels each state for the page, with its badge tone.
var deploymentStates = map[string][2]string{
	store.DeployStarting:  {"Starting", "info"},
	store.DeployLive:      {"Live", "success"},
	store.DeployUnhealthy: {"Unhealthy", "warning"},
	store.DeployStopping:  {"Stopping", "neutral"},
	store.DeployStopped:   {"Stopped", "neutral"},
	store.DeployFailed:    {"Failed", "danger"},
	store.DeployGone:      {"Snapshot deleted", "neutral"},
}

// deploymentRow is one deployment as the page shows it.
func (a *app) deploymentRow(dep store.Deployment) views.DeploymentRow {
	now := a.now()
	state := dep.State(now, a.proxyStale())
	label := deploymentStates[state]
	row := views.DeploymentRow{Model: dep.Name, RunURL: fmt.Sprintf("/runs/%d", dep.RunID),
		Snapshot: fmt.Sprintf("%s · step %s", dep.RunName, formatCount(int64(dep.Step))),
		Created:  dep.CreatedAt.Format("2 Jan 2006 15:04"), Status: label[0], Tone: label[1],
		Where: "This server (built-in model)"}
	switch state {
	case store.DeployStarting, store.DeployLive, store.DeployUnhealthy:
		row.StopURL = fmt.Sprintf("/deployments/%d/stop", dep.ID)
	}
	if !dep.Worker {
		return row
	}
	row.Where = fmt.Sprintf("%s backend, %s", dep.Job.Backend, dep.Job.GPUType)
	if t := dep.GPUTime(now); t > 0 {
		row.GPUTime = formatDuration(t)
	}
	switch state {
	case store.DeployFailed, store.DeployStopped, store.DeployStopping:
		if dep.Job.Reason != "stopped" { // the label says it already
			row.Detail = dep.Job.Reason
		}
	case store.DeployUnhealthy:
		row.Detail = dep.Job.Health
		if row.Detail == "" {
			row.Detail = "No recent heartbeat from its inference server."
		}
	case store.DeployStarting:
		row.Detail = "Waiting for the inference server to load the snapshot."
		if dep.Job.Health != "" {
			row.Detail = dep.Job.Health
		}
	}
	row.Log = lastLines(dep.Job.Log, 60)
	return row
}

// lastLines is the last n lines of a log.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
