package handlers

import (
	"fmt"
	"net/http"
	"strings"

	"tunelab/views"
)

// showAdminBackends is the operator's page of backends: health, capacity, runs and queue.
func (a *app) showAdminBackends(w http.ResponseWriter, r *http.Request) {
	v := views.AdminBackends{}
	if a.runs.Queue != nil {
		rep, err := a.runs.Queue.Report(r.Context())
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		v.Queued, v.People = rep.Queued, rep.People
		if rep.Stranded > 0 {
			v.Stranded = fmt.Sprintf("%s queued for a GPU type, model or method no configured backend offers; they wait until one does, or their owners cancel them.",
				plural(rep.Stranded, "run is", "runs are"))
		}
		for _, b := range rep.Backends {
			row := views.AdminBackendRow{Name: b.Name, Health: "Healthy", Tone: "success",
				Capacity: plural(b.Slots, "job", "jobs") + " at once",
				Running:  fmt.Sprint(b.Running), Queued: fmt.Sprint(b.Queued), Checked: "Not checked yet"}
			if !b.Checked.IsZero() {
				row.Checked = "Checked " + b.Checked.UTC().Format(adminTime)
			}
			switch {
			case b.Checked.IsZero():
				row.Health, row.Tone = "Not checked yet", "neutral"
			case b.Problem != "":
				row.Health, row.Tone, row.Problem = "Unhealthy", "danger", b.Problem
			}
			var gpus []string
			for _, g := range b.GPUTypes {
				gpus = append(gpus, g.ID)
			}
			row.GPUTypes = strings.Join(gpus, ", ")
			if row.GPUTypes == "" {
				row.GPUTypes = "none offered"
			}
			v.Rows = append(v.Rows, row)
		}
	}
	a.render(w, r, http.StatusOK, a.page(r, "Backends", "admin"), views.AdminBackendsPage(v))
}
