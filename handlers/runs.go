package handlers

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/views"
)

// newRun shows the run form: with the backend's defaults, or ?from={run id} with that
// run's settings and datasets ("Start a similar run"), or ?dataset={id} with that dataset
// chosen ("Fine-tune on this dataset", and a method that suits it).
func (a *app) newRun(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	values := a.defaultRunValues(r)
	var fromName string
	q := r.URL.Query()
	if id, err := strconv.ParseInt(q.Get("from"), 10, 64); err == nil && id > 0 {
		from, err := a.store.Run(r.Context(), u.ID, id)
		switch {
		case err == nil:
			values, fromName = runConfigValues(from), from.Name
		case !errors.Is(err, store.ErrNotFound):
			a.serverError(w, r, err)
			return
		}
	} else if id, err := strconv.ParseInt(q.Get("dataset"), 10, 64); err == nil && id > 0 {
		d, err := a.store.Dataset(r.Context(), u.ID, id)
		switch {
		case err == nil:
			values.DatasetID = strconv.FormatInt(d.ID, 10)
			if !store.Method(values.Method).Accepts(d.Format) {
				values.Method = string(a.methodFor(d.Format))
			}
		case !errors.Is(err, store.ErrNotFound):
			a.serverError(w, r, err)
			return
		}
	}
	values, ok := a.continueValues(w, r, u.ID, values)
	if !ok {
		return
	}
	form, err := a.runForm(r, u.ID, values)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	form.FromName = fromName
	block, err := a.billing.RunBlock(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	form.Blocked = block.Reason
	a.render(w, r, http.StatusOK, a.page(r, "New run", "runs"), views.NewRunPage(form))
}

// methodFor picks the first method the backend offers that trains on a dataset format.
func (a *app) methodFor(format store.DatasetFormat) store.Method {
	for _, m := range a.runs.Backend.Offer().Methods {
		if m.Accepts(format) {
			return m
		}
	}
	return store.MethodLoRA
}

// runConfigValues fills the run form with a run's settings and datasets.
func runConfigValues(run store.Run) views.RunFormValues {
	c := run.Config
	v := views.RunFormValues{
		DatasetID: strconv.FormatInt(run.DatasetID, 10), BaseModel: c.BaseModel, Method: string(c.Method),
		Epochs: strconv.Itoa(c.Epochs), LearningRate: formatFloat(c.LearningRate), BatchSize: strconv.Itoa(c.BatchSize),
		LoRARank: strconv.Itoa(c.LoRARank), LoRAAlpha: formatFloat(c.LoRAAlpha), MaxSeqLen: strconv.Itoa(c.MaxSeqLen),
		Seed: strconv.FormatInt(c.Seed, 10), GPUType: c.GPUType, ValidationSplit: formatFloat(c.ValidationSplit),
		SnapshotEvery: strconv.Itoa(c.SnapshotEvery),
	}
	if c.BudgetCents > 0 {
		v.BudgetUSD = fmt.Sprintf("%d.%02d", c.BudgetCents/100, c.BudgetCents%100)
	}
	if run.EvalDatasetID != 0 {
		v.EvalDatasetID = strconv.FormatInt(run.EvalDatasetID, 10)
	}
	if !c.UsesLoRA() {
		v.LoRARank, v.LoRAAlpha = "16", "32" // unused by the method; a sensible start if it changes
	}
	return v
}

// createRun validates the form (ranges, what the backend offers, the datasets' formats)
// and queues the run; a refused form comes back 422 with messages beside the fields.
func (a *app) createRun(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	if err := r.ParseForm(); err != nil {
		a.badRequest(w, r, "The form could not be read; reload the page and try again.")
		return
	}
	values := runFormValues(r)
	nr, errs := a.parseRun(u.ID, values)
	formError := "The run was not started. Fix the fields marked below."
	if len(errs) > 0 {
		// Report every problem at once: a dataset that does not suit the method too, not
		// only on the next submit.
		for k, msg := range a.formatErrors(r, nr) {
			if _, seen := errs[k]; !seen {
				errs[k] = msg
			}
		}
	}
	status := http.StatusUnprocessableEntity
	block, err := a.billing.RunBlock(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if len(errs) == 0 && block.Blocked() {
		formError, status = block.Reason, http.StatusPaymentRequired
	} else if len(errs) == 0 {
		nr.MaxQueued = a.cfg.QueuedRunsQuota
		run, err := a.store.CreateRun(r.Context(), nr)
		var quota *store.QuotaError
		switch {
		case errors.As(err, &quota):
			formError = queuedRunsMessage(quota)
		case errors.Is(err, store.ErrNotFound):
			errs = map[string]string{"dataset_id": "Choose one of your datasets."}
			if nr.EvalDatasetID != 0 {
				errs["eval_dataset_id"] = "Choose one of your datasets, or none."
			}
		case errors.Is(err, store.ErrDatasetFormat):
			errs = a.formatErrors(r, nr)
		case errors.As(err, new(*store.InitSnapshotError)):
			errs, _ = a.initSnapshotErrors(err)
		case err != nil:
			a.serverError(w, r, err)
			return
		default:
			a.wake()
			redirect(w, r, fmt.Sprintf("/runs/%d", run.ID))
			return
		}
	}
	form, err := a.runForm(r, u.ID, values)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	form.Errors = errs
	form.FormError = formError
	form.Blocked = block.Reason
	a.renderWith(w, r, status, a.page(r, "New run", "runs"), views.NewRunPage(form), views.RunFormFragment(form))
}

// queuedRunsMessage says why a run was not queued and what to do.
func queuedRunsMessage(q *store.QuotaError) string {
	return fmt.Sprintf("The run was not started: you already have %d queued runs, and one account may have at most %d waiting. Wait for a queued run to start, or cancel queued runs you no longer need, then start this one.", q.Used, q.Limit)
}

// formatErrors explains which dataset does not suit the chosen method.
func (a *app) formatErrors(r *http.Request, nr store.NewRun) map[string]string {
	need := "a chat or completion dataset"
	if nr.Config.Method == store.MethodDPO {
		need = "a preference dataset (prompt, chosen, rejected)"
	}
	errs := map[string]string{}
	for field, id := range map[string]int64{"dataset_id": nr.DatasetID, "eval_dataset_id": nr.EvalDatasetID} {
		if id == 0 {
			continue
		}
		if d, err := a.store.Dataset(r.Context(), nr.UserID, id); err == nil && !nr.Config.Method.Accepts(d.Format) {
			errs[field] = fmt.Sprintf("%q is a %s dataset; %s needs %s.", d.Name, d.Format, nr.Config.Method, need)
		}
	}
	if len(errs) > 0 {
		errs["method"] = fmt.Sprintf("%s does not fit the dataset chosen; pick another method or dataset.", nr.Config.Method)
	}
	return errs
}

// runByPath loads the signed-in person's run named in the path, answering 404 otherwise
// (and recording an authorization denial when the run exists but is someone else's).
func (a *app) runByPath(w http.ResponseWriter, r *http.Request) (store.Run, bool) {
	u, _ := userFrom(r.Context())
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		a.notFound(w, r)
		return store.Run{}, false
	}
	run, err := a.store.Run(r.Context(), u.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		if other, err := a.store.RunByID(r.Context(), id); err == nil && other.UserID != u.ID {
			a.recordEvent(r, store.EventAuthzDenied, u.ID, fmt.Sprintf("run %d", id))
		}
		a.notFound(w, r)
		return store.Run{}, false
	}
	if err != nil {
		a.serverError(w, r, err)
		return store.Run{}, false
	}
	return run, true
}

func (a *app) showRun(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	a.renderRunPage(w, r, run, http.StatusOK, nil)
}

// renderRunPage renders a run's page; edit, when set, adjusts it (a refused labels form).
func (a *app) renderRunPage(w http.ResponseWriter, r *http.Request, run store.Run, status int, edit func(*views.RunDetail)) {
	live, err := a.runLive(r, run)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	d := runDetail(run, live, a.runs.Backend.Offer())
	metrics, err := a.runMetrics(r.Context(), run)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	d.Metrics = metrics
	d.EventsURL = fmt.Sprintf("/runs/%d/events?after=%d", run.ID, metrics.AfterSeq)
	if d.Rules, err = a.runRulesPanel(r, run); err != nil {
		a.serverError(w, r, err)
		return
	}
	if d.Checkpoints, err = a.checkpoints(r.Context(), run, r.URL.Query().Get("metric"), r.URL.Query().Get("set")); err != nil {
		a.serverError(w, r, err)
		return
	}
	if d.Checkpoints.Error != "" && status == http.StatusOK {
		status = http.StatusBadRequest
	}
	if edit != nil {
		edit(&d)
	}
	p := a.page(r, d.Name, "runs")
	p.Charts = true
	a.renderWith(w, r, status, p, views.RunPage(d), views.RunPage(d))
}

func (a *app) cancelRun(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	_, err := a.store.CancelRun(r.Context(), run.UserID, run.ID)
	if err != nil && !errors.Is(err, store.ErrRunFinished) {
		a.serverError(w, r, err)
		return
	}
	a.publish(statusEvent(run.ID))
	a.wake()
	redirect(w, r, fmt.Sprintf("/runs/%d", run.ID))
}

// retryRun queues a new run with the same configuration and datasets.
func (a *app) retryRun(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	if block, err := a.billing.RunBlock(r.Context(), run.UserID); err != nil {
		a.serverError(w, r, err)
		return
	} else if block.Blocked() {
		a.errorPage(w, r, http.StatusPaymentRequired, "Cannot start a run now", block.Reason)
		return
	}
	next, err := a.store.CreateRun(r.Context(), store.NewRun{UserID: run.UserID, DatasetID: run.DatasetID,
		EvalDatasetID: run.EvalDatasetID, Config: run.Config, Backend: gpu.RouteName(a.runs.Backend, run.Config), RetryOf: run.ID,
		MaxQueued: a.cfg.QueuedRunsQuota})
	var quota *store.QuotaError
	if errors.As(err, &quota) {
		a.errorPage(w, r, http.StatusUnprocessableEntity, "Cannot retry this run yet", queuedRunsMessage(quota))
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		a.errorPage(w, r, http.StatusConflict, "Cannot retry this run",
			"Its dataset has been deleted. Start a new run with another dataset.")
		return
	}
	if msg := initSnapshotRetryMessage(err); msg != "" {
		a.errorPage(w, r, http.StatusConflict, "Cannot retry this run", msg)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.wake()
	redirect(w, r, fmt.Sprintf("/runs/%d", next.ID))
}

func (a *app) deleteRun(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	if err := a.store.DeleteRun(r.Context(), run.UserID, run.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventRunDeleted, run.UserID, fmt.Sprintf("run %d", run.ID))
	a.audit(r, store.AuditRunDeleted, run.UserID, run.UserID, fmt.Sprintf("run %d", run.ID))
	a.publish(statusEvent(run.ID))
	a.wake()
	redirect(w, r, "/runs")
}

// downloadSnapshot decrypts a snapshot as it streams it out.
func (a *app) downloadSnapshot(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	sid, err := strconv.ParseInt(r.PathValue("sid"), 10, 64)
	if err != nil {
		a.notFound(w, r)
		return
	}
	sn, err := a.store.Snapshot(r.Context(), run.UserID, run.ID, sid)
	if errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	f, err := a.vault.Open(sn.FileID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	defer f.Close()
	body, format := sniffSnapshot(f)
	h := w.Header()
	h.Set("Content-Type", format.contentType)
	h.Set("Content-Length", strconv.FormatInt(sn.SizeBytes, 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="run-%d-step-%d.%s"`, run.ID, sn.Step, format.ext))
	h.Set("X-Content-SHA256", sn.SHA256)
	h.Set("Cache-Control", "private, no-store")
	if _, err := io.Copy(w, body); err != nil {
		// Headers are gone; a cut stream (e.g. a tampered file failing authentication) is
		// all the client can see, and the length tells it the file is short.
		a.log.ErrorContext(r.Context(), "snapshot download", "run", run.ID, "snapshot", sn.ID, "err", err)
	}
}
