package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"tunelab/store"
	"tunelab/trainer"
	"tunelab/views"
)

// Deployments: one click on a snapshot of the built-in model makes it callable through the
// OpenAI-compatible API (openai.go) under the model id "tl-<run>-<step>". Snapshots of GPU
// runs would need an inference server on a backend, which is not built yet.

const deployGPURefusal = "Deploying snapshots of GPU runs is not built yet; only snapshots of the built-in model can be deployed."

// deployButton is the run page's Deploy action for one snapshot.
func deployButton(run store.Run, s store.Snapshot) views.DeployButton {
	if _, ok := trainer.BaseModelByID(run.Config.BaseModel); !ok {
		return views.DeployButton{Refusal: deployGPURefusal}
	}
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
	if _, ok := trainer.BaseModelByID(sn.BaseModel); !ok {
		a.errorPage(w, r, http.StatusConflict, "Cannot deploy this snapshot", deployGPURefusal)
		return
	}
	_, err = a.store.CreateDeployment(r.Context(), u.ID, sn.ID, deploymentName(sn.RunID, sn.Step), a.now())
	if err != nil && !errors.Is(err, store.ErrDeploymentExists) { // deploying twice keeps the live one
		a.serverError(w, r, err)
		return
	}
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
		row := views.DeploymentRow{Model: dep.Name, RunURL: fmt.Sprintf("/runs/%d", dep.RunID),
			Snapshot: fmt.Sprintf("%s · step %s", dep.RunName, formatCount(int64(dep.Step))),
			Created:  dep.CreatedAt.Format("2 Jan 2006 15:04")}
		switch {
		case dep.Live():
			row.Status, row.Tone, row.StopURL = "Live", "success", fmt.Sprintf("/deployments/%d/stop", dep.ID)
			if example == trainer.BaseModels[0].ID {
				example = dep.Name
			}
		case dep.Gone:
			row.Status, row.Tone = "Snapshot deleted", "neutral"
		default:
			row.Status, row.Tone = "Stopped", "neutral"
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
	redirect(w, r, "/deployments")
}
