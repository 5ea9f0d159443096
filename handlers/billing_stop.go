package handlers

import (
	"net/http"
)

// stopIfDue returns the reason a run was asked to stop cleanly, asking it now when billing
// says it must (billing.StopReason): the worker then uploads a final snapshot and finishes
// the run as cancelled with that reason. "" lets the run go on.
func (a *app) stopIfDue(r *http.Request, id int64) (string, error) {
	run, err := a.store.RunByID(r.Context(), id)
	if err != nil {
		return "", err
	}
	if run.StopReason != "" {
		return run.StopReason, nil
	}
	reason, err := a.billing.StopReason(r.Context(), run)
	if err != nil || reason == "" {
		return "", err
	}
	asked, err := a.store.StopRun(r.Context(), id, reason)
	if err != nil {
		return "", err
	}
	if asked {
		a.log.InfoContext(r.Context(), "run asked to stop", "run", id, "why", reason)
		a.mailRunStopped(r, id, reason)
	}
	return reason, nil
}
