package handlers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"net/http"
	"net/url"

	"tunelab/store"
	"tunelab/trainer"
	"tunelab/views"
)

// Evaluation of snapshots (issue 13): of the built-in model here, in process; of GPU runs
// on the snapshot's live deployment (snapshot_eval_gpu.go). "Evaluate" queues a snapshot;
// one background loop works through the queue, one job at a time (so never two of one
// person's at once), scoring the run's held-out rows, capped at evalMaxRows. Jobs are rows
// in snapshot_evals, so they survive restarts: one cut short is queued again at start-up.

const evalMaxRows = 200

// errEvalSnapshotFormat fails a built-in run's snapshot that is not the built-in model's weights.
var errEvalSnapshotFormat = errors.New("This snapshot is not in the built-in model's format (safetensors), so it cannot be scored.")

// evaluator wakes the evaluation loop when a job is queued.
type evaluator struct{ wake chan struct{} }

func (e *evaluator) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// runEvaluations is the background loop started with the app.
func (a *app) runEvaluations() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if a.stopping != nil {
			<-a.stopping
			cancel()
		}
	}()
	if n, err := a.store.RequeueRunningEvals(ctx); err != nil {
		a.log.Warn("evaluations: requeue after restart", "err", err)
	} else if n > 0 {
		a.log.Info("evaluations: queued again after restart", "jobs", n)
	}
	for {
		job, err := a.store.ClaimNextEval(ctx)
		if err == nil {
			a.evaluate(ctx, job)
			continue
		}
		if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			a.log.Warn("evaluations: claim", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.evals.wake:
		}
	}
}

// evaluate runs one job and stores its outcome.
func (a *app) evaluate(ctx context.Context, job store.SnapshotEval) {
	scores, answers, err := a.scoreSnapshot(ctx, job)
	if ctx.Err() != nil {
		return // shutting down: the job stays running and is queued again at start-up
	}
	if err != nil {
		reason := err.Error()
		var refused *evalSetProblem
		if !errors.Is(err, errEvalSnapshotFormat) && !errors.As(err, &refused) {
			a.log.Warn("evaluation failed", "snapshot", job.SnapshotID, "err", err)
			reason = "The evaluation could not finish: " + reason
		}
		if err := a.store.FailEval(context.Background(), job.ID, reason); err != nil {
			a.log.Warn("evaluations: store failure", "err", err)
		}
		return
	}
	var em, contains sql.NullFloat64
	if answers {
		em, contains = sql.NullFloat64{Float64: scores.ExactMatch, Valid: true}, sql.NullFloat64{Float64: scores.Contains, Valid: true}
	}
	if err := a.store.FinishEval(context.Background(), job.ID, scores.Rows, scores.Loss, em, contains); err != nil {
		a.log.Warn("evaluations: store result", "err", err)
	}
}

// scoreSnapshot loads the snapshot and the rows of the job's eval set and scores them; answers
// says whether exact-match and contains were scored (chat data).
func (a *app) scoreSnapshot(ctx context.Context, job store.SnapshotEval) (trainer.EvalScores, bool, error) {
	run, err := a.store.Run(ctx, job.UserID, job.RunID)
	if err != nil {
		return trainer.EvalScores{}, false, err
	}
	if _, builtIn := trainer.BaseModelByID(run.Config.BaseModel); !builtIn {
		return a.scoreGPUSnapshot(ctx, job, run)
	}
	sn, err := a.store.Snapshot(ctx, job.UserID, job.RunID, job.SnapshotID)
	if err != nil {
		return trainer.EvalScores{}, false, err
	}
	model, err := a.loadSnapshotModel(sn)
	if err != nil {
		return trainer.EvalScores{}, false, err
	}
	cfg, err := trainer.ConfigFor(wireConfig(run.Config))
	if err != nil {
		return trainer.EvalScores{}, false, err
	}
	held, chat, err := a.evalRows(ctx, job, run, cfg)
	if err != nil {
		return trainer.EvalScores{}, false, err
	}
	held = held[:min(len(held), evalMaxRows)]
	progress := func(done int) { // every 10 rows: the card shows how far it got
		if done%10 == 0 && done < len(held) {
			if err := a.store.SetEvalProgress(ctx, job.ID, done); err != nil {
				a.log.Warn("evaluations: progress", "err", err)
			}
		}
	}
	scores, err := trainer.Evaluate(ctx, model, held, cfg.MaxSeqLen, chat, progress)
	return scores, chat, err
}

// evalRows returns the rows a job scores (all of them; the caller caps them) and whether
// they are chat rows: the run's held-out rows, or the rows of the person's dataset, which
// must still be theirs, not deleted since it was queued, and of a format the run takes.
func (a *app) evalRows(ctx context.Context, job store.SnapshotEval, run store.Run, cfg trainer.Config) ([]trainer.Example, bool, error) {
	if job.DatasetID != 0 {
		if _, err := a.evalSet(ctx, run, evalSetValue(job.DatasetID), true); err != nil {
			return nil, false, err
		}
		rows, err := a.datasetRows(ctx, job.DatasetID)
		if err != nil {
			return nil, false, err
		}
		held := trainer.HeldOut(cfg, trainer.TrainingData{EvalExamples: rows.Examples, EvalPairs: rows.Pairs})
		if len(held) == 0 {
			return nil, false, &evalSetProblem{"the dataset has no rows to score"}
		}
		return held, rows.Format == trainer.FormatChat, nil
	}
	train, err := a.datasetRows(ctx, run.DatasetID)
	if err != nil {
		return nil, false, err
	}
	data := trainer.TrainingData{Examples: train.Examples, Pairs: train.Pairs}
	chat := train.Format == trainer.FormatChat
	if run.EvalDatasetID != 0 {
		eval, err := a.datasetRows(ctx, run.EvalDatasetID)
		if err != nil {
			return nil, false, err
		}
		data.EvalExamples, data.EvalPairs = eval.Examples, eval.Pairs
		chat = eval.Format == trainer.FormatChat
	}
	held := trainer.HeldOut(cfg, data)
	if len(held) == 0 {
		return nil, false, errors.New("this run holds out no rows (validation split 0 and no validation dataset), so there is nothing to score")
	}
	return held, chat, nil
}

func (a *app) loadSnapshotModel(sn store.Snapshot) (*trainer.Model, error) {
	f, err := a.vault.Open(sn.FileID)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	body, format := sniffSnapshot(f)
	if format != formatSafetensors {
		return nil, errEvalSnapshotFormat
	}
	return trainer.ReadModel(body, nil)
}

func (a *app) datasetRows(ctx context.Context, id int64) (trainer.Rows, error) {
	d, err := a.store.DatasetByID(ctx, id)
	if err != nil {
		return trainer.Rows{}, err
	}
	f, err := a.vault.Open(d.FileID)
	if err != nil {
		return trainer.Rows{}, err
	}
	defer f.Close()
	return trainer.ParseRows(f, string(d.Format))
}

// queueSet reads the eval set of an evaluate form. A set that cannot be scored on is
// answered with the run page saying why (nothing queued); ok is false then.
func (a *app) queueSet(w http.ResponseWriter, r *http.Request, run store.Run) (int64, bool) {
	d, err := a.evalSet(r.Context(), run, r.PostFormValue("set"), true)
	var refused *evalSetProblem
	if errors.As(err, &refused) {
		a.renderRunPage(w, r, run, http.StatusBadRequest, func(d *views.RunDetail) { d.Checkpoints.Error = refused.msg })
		return 0, false
	}
	if err != nil {
		a.serverError(w, r, err)
		return 0, false
	}
	return d.ID, true
}

// evaluatedRedirect goes back to the leaderboard showing the set just queued.
func evaluatedRedirect(w http.ResponseWriter, r *http.Request, run store.Run, set int64) {
	q := url.Values{}
	if set != 0 {
		q.Set("set", evalSetValue(set))
	}
	if m := r.PostFormValue("metric"); m != "" && validMetric(m) {
		q.Set("metric", m)
	}
	target := fmt.Sprintf("/runs/%d", run.ID)
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	redirect(w, r, target+"#checkpoints")
}

// evaluateSnapshot queues one snapshot of the person's run on the chosen eval set (a GPU
// snapshot without a live deployment too: its job fails saying to deploy it first).
func (a *app) evaluateSnapshot(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	sid, err := strconv.ParseInt(r.PathValue("sid"), 10, 64)
	if err != nil || sid <= 0 {
		a.notFound(w, r)
		return
	}
	if _, err := a.store.Snapshot(r.Context(), run.UserID, run.ID, sid); errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return
	} else if err != nil {
		a.serverError(w, r, err)
		return
	}
	set, ok := a.queueSet(w, r, run)
	if !ok {
		return
	}
	if err := a.store.QueueSnapshotEval(r.Context(), run.UserID, run.ID, sid, set); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.evals.poke()
	evaluatedRedirect(w, r, run, set)
}

// evaluateAll queues every snapshot of the person's run on the chosen eval set; of a GPU
// run, every snapshot with a live deployment (none: the page says to deploy one first).
func (a *app) evaluateAll(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	set, ok := a.queueSet(w, r, run)
	if !ok {
		return
	}
	snaps, err := a.store.Snapshots(r.Context(), run.UserID, run.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if _, builtIn := trainer.BaseModelByID(run.Config.BaseModel); !builtIn {
		deployed, err := a.deployedSnapshots(r.Context(), run.UserID)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		snaps = slices.DeleteFunc(snaps, func(s store.Snapshot) bool { return !deployed[s.ID] })
		if len(snaps) == 0 {
			a.renderRunPage(w, r, run, http.StatusConflict, func(d *views.RunDetail) { d.Checkpoints.Error = errNoDeployedSnapshot })
			return
		}
	}
	for _, s := range snaps {
		if err := a.store.QueueSnapshotEval(r.Context(), run.UserID, run.ID, s.ID, set); err != nil {
			a.serverError(w, r, err)
			return
		}
	}
	a.evals.poke()
	evaluatedRedirect(w, r, run, set)
}

// perplexity is exp of the loss (per byte for the built-in model, per token for GPU runs).
func perplexity(loss float64) float64 { return math.Exp(loss) }
