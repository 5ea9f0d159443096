package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"tunelab/store"
	"tunelab/trainer/protocol"
	"tunelab/views"
)

// Snapshots on the run page: delete one (after a confirmation dialog), and continue from
// one (a new run that starts from its weights, with the worker API's init snapshot).

// deleteSnapshot marks one of the person's snapshots deleted: hidden at once everywhere
// (its download answers 404), its file removed by the hourly purge. The run may be running.
func (a *app) deleteSnapshot(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	sid, err := strconv.ParseInt(r.PathValue("sid"), 10, 64)
	if err != nil || sid <= 0 {
		a.notFound(w, r)
		return
	}
	err = a.store.DeleteSnapshot(r.Context(), run.UserID, run.ID, sid)
	if errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventSnapshotDeleted, run.UserID, fmt.Sprintf("run %d snapshot %d", run.ID, sid))
	a.audit(r, store.AuditSnapshotDeleted, run.UserID, run.UserID, fmt.Sprintf("run %d snapshot %d", run.ID, sid))
	a.publish(statusEvent(run.ID))
	redirect(w, r, fmt.Sprintf("/runs/%d", run.ID))
}

// snapshotRow is one snapshot as the run page lists it, with its actions.
func snapshotRow(run store.Run, s store.Snapshot) views.SnapshotRow {
	return views.SnapshotRow{
		Step: formatCount(int64(s.Step)), Final: s.Final, Size: formatBytes(s.SizeBytes), SHA256: s.SHA256,
		Created:     s.CreatedAt.Format("15:04:05"),
		DownloadURL: fmt.Sprintf("/runs/%d/snapshots/%d/download", run.ID, s.ID),
		DeleteURL:   fmt.Sprintf("/runs/%d/snapshots/%d/delete", run.ID, s.ID),
		ContinueURL: fmt.Sprintf("/runs/new?snapshot=%d", s.ID),
		Deploy:      deployButton(run, s),
	}
}

// addLineage links the run's live panel with the runs it continues and that continue it:
// the first timeline entry says which run and snapshot this one started from, and the
// snapshots card lists the runs started from this one's snapshots.
func (a *app) addLineage(ctx context.Context, run store.Run, l *views.RunLive) error {
	lin, err := a.store.RunLineage(ctx, run.UserID, run.ID)
	if err != nil {
		return err
	}
	if lin.FromRun != 0 && len(l.Timeline) > 0 {
		first := &l.Timeline[0]
		if first.Note == "" || strings.HasPrefix(first.Note, "continued from") {
			first.Note = fmt.Sprintf("Continued from run %d, snapshot at step %s", lin.FromRun, formatCount(int64(lin.FromStep)))
			if lin.FromVisible {
				first.URL = fmt.Sprintf("/runs/%d", lin.FromRun)
			}
		}
	}
	for _, c := range lin.Continued {
		l.Continued = append(l.Continued, views.ContinuedRunRow{Name: fmt.Sprintf("Run %d", c.ID), URL: fmt.Sprintf("/runs/%d", c.ID),
			Step: formatCount(int64(c.Step)), Status: string(c.Status), Label: c.Status.Label(), Tone: statusTone(c.Status)})
	}
	return nil
}

// continueValues prefills the new-run form from the run of the snapshot in ?snapshot=:
// its datasets and settings, and the hidden init_snapshot_id. ok is false when it answered
// (404 for a snapshot that is not the person's or was deleted).
func (a *app) continueValues(w http.ResponseWriter, r *http.Request, userID int64, v views.RunFormValues) (views.RunFormValues, bool) {
	q := r.URL.Query().Get("snapshot")
	if q == "" {
		return v, true
	}
	sid, err := strconv.ParseInt(q, 10, 64)
	if err != nil || sid <= 0 {
		a.notFound(w, r)
		return v, false
	}
	src, err := a.store.InitSnapshotSource(r.Context(), userID, sid)
	if errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return v, false
	}
	if err != nil {
		a.serverError(w, r, err)
		return v, false
	}
	from, err := a.store.Run(r.Context(), userID, src.RunID)
	if err != nil {
		a.serverError(w, r, err)
		return v, false
	}
	c := src.Config
	v.DatasetID, v.EvalDatasetID = strconv.FormatInt(from.DatasetID, 10), ""
	if from.EvalDatasetID != 0 {
		v.EvalDatasetID = strconv.FormatInt(from.EvalDatasetID, 10)
	}
	v.BaseModel, v.Method, v.GPUType = c.BaseModel, string(c.Method), c.GPUType
	v.Epochs, v.LearningRate, v.BatchSize = strconv.Itoa(c.Epochs), formatFloat(c.LearningRate), strconv.Itoa(c.BatchSize)
	if c.UsesLoRA() {
		v.LoRARank, v.LoRAAlpha = strconv.Itoa(c.LoRARank), formatFloat(c.LoRAAlpha)
	}
	v.MaxSeqLen, v.Seed = strconv.Itoa(c.MaxSeqLen), strconv.FormatInt(c.Seed, 10)
	v.ValidationSplit, v.SnapshotEvery = formatFloat(c.ValidationSplit), strconv.Itoa(c.SnapshotEvery)
	v.InitSnapshotID = strconv.FormatInt(sid, 10)
	return v, true
}

// parseInitSnapshot reads the hidden init_snapshot_id into the config; whether the
// snapshot fits the run is checked by the store when the run is created.
func parseInitSnapshot(v views.RunFormValues, cfg *store.RunConfig, errs map[string]string) {
	if v.InitSnapshotID == "" {
		return
	}
	id, err := strconv.ParseInt(v.InitSnapshotID, 10, 64)
	if err != nil || id <= 0 {
		errs["init_snapshot_id"] = "This is not a snapshot of yours."
		return
	}
	cfg.InitSnapshotID = id
}

// describeInitSnapshot fills the form's "Continue from" note.
func (a *app) describeInitSnapshot(r *http.Request, userID int64, f *views.RunForm) {
	sid, err := strconv.ParseInt(f.Values.InitSnapshotID, 10, 64)
	if err != nil || sid <= 0 {
		f.Continue = views.ContinueFrom{Label: "A snapshot that is not available"}
		return
	}
	src, err := a.store.InitSnapshotSource(r.Context(), userID, sid)
	if err != nil {
		f.Continue = views.ContinueFrom{Label: fmt.Sprintf("Snapshot %d, which is no longer available", sid)}
		return
	}
	f.Continue = views.ContinueFrom{Label: fmt.Sprintf("Run %d, snapshot at step %s", src.RunID, formatCount(int64(src.Step))),
		RunURL: fmt.Sprintf("/runs/%d", src.RunID)}
}

// initSnapshotErrors words the store's refusal of a continued run beside the fields.
func (a *app) initSnapshotErrors(err error) (map[string]string, bool) {
	var ie *store.InitSnapshotError
	if !errors.As(err, &ie) {
		return nil, false
	}
	o := a.runs.Backend.Offer()
	errs := map[string]string{}
	switch ie.Field {
	case "base_model":
		errs["base_model"] = fmt.Sprintf("A continued run keeps its snapshot's base model: choose %s.", modelName(o, ie.Want))
	case "method":
		errs["method"] = fmt.Sprintf("A continued run keeps its snapshot's method: choose %s.", store.Method(ie.Want).Label())
	case "lora_rank":
		errs["lora_rank"] = fmt.Sprintf("The snapshot's adapters have rank %s; a continued run keeps it.", ie.Want)
	}
	if len(errs) > 0 {
		errs["init_snapshot_id"] = "This snapshot was trained with other settings; see the fields marked below."
	} else {
		errs["init_snapshot_id"] = "This snapshot is no longer available: it was deleted, or it is not yours."
	}
	return errs, true
}

// initSnapshotRetryMessage explains why a continued run cannot be retried, or "".
func initSnapshotRetryMessage(err error) string {
	var ie *store.InitSnapshotError
	if !errors.As(err, &ie) {
		return ""
	}
	return "It continued from a snapshot that has since been deleted. Start a new run instead."
}

// initSnapshotSpec is the job spec's init_snapshot of a run that continues from one, or nil.
// A snapshot already purged keeps its URL (which answers 404), so the worker fails the run
// saying so rather than training from the base model.
func (a *app) initSnapshotSpec(ctx context.Context, run store.Run) (*protocol.InitSnapshot, error) {
	if run.Config.InitSnapshotID == 0 {
		return nil, nil
	}
	spec := &protocol.InitSnapshot{URL: fmt.Sprintf("%s%d/init-snapshot", protocol.PathPrefix, run.ID)}
	sn, err := a.store.RunInitSnapshot(ctx, run.ID)
	if errors.Is(err, store.ErrNotFound) {
		return spec, nil
	}
	if err != nil {
		return nil, err
	}
	spec.RunID, spec.Step, spec.SHA256, spec.SizeBytes = sn.RunID, sn.Step, sn.SHA256, sn.SizeBytes
	return spec, nil
}

// workerInitSnapshot streams the snapshot the run starts from, decrypted, to its worker
// (authorised by the new run's token). The person may have deleted the snapshot after
// queueing the run: the store keeps its file until the run ends.
func (a *app) workerInitSnapshot(w http.ResponseWriter, r *http.Request) {
	sn, err := a.store.RunInitSnapshot(r.Context(), workerRun(r))
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", "This run does not start from a snapshot, or the snapshot is gone.")
		return
	}
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	a.sendWorkerSnapshot(w, r, sn, "The snapshot this run starts from is gone.", "run", workerRun(r), "snapshot", sn.ID)
}

// sendWorkerSnapshot streams a stored snapshot, decrypted, to a worker (a run continuing
// from it, or a deployment serving it) with its size and sha256; gone is the 404 message
// when its file has been removed, logArgs say whose download failed.
func (a *app) sendWorkerSnapshot(w http.ResponseWriter, r *http.Request, sn store.Snapshot, gone string, logArgs ...any) {
	f, err := a.vault.Open(sn.FileID)
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "not_found", gone)
		return
	}
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	defer f.Close()
	body, format := sniffSnapshot(f)
	h := w.Header()
	h.Set("Content-Type", format.contentType)
	h.Set("Content-Length", strconv.FormatInt(sn.SizeBytes, 10))
	h.Set(protocol.HeaderSnapshotSHA256, sn.SHA256)
	h.Set("Cache-Control", "no-store")
	if _, err := io.Copy(w, body); err != nil {
		a.log.ErrorContext(r.Context(), "worker snapshot download", append(logArgs, "err", err)...)
	}
}
