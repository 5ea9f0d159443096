package handlers

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"tunelab/store"
	"tunelab/views"
)

// Eval sets: a snapshot is scored on the run's held-out rows (set "heldout", id 0) or on
// one of the person's own datasets (set = its id) of a format the run's method takes.
// Scores are kept per (snapshot, set); the leaderboard shows one set at a time.

const heldOutSet = "heldout"

// evalSetProblem is a refused eval set, with what to do about it.
type evalSetProblem struct{ msg string }

func (p *evalSetProblem) Error() string { return p.msg }

const notYourSetMessage = "Choose the run's held-out rows or one of your own datasets to evaluate on."

// evalSetFormats says which dataset formats a run's snapshots can be scored on.
func evalSetFormats(m store.Method) string {
	if m == store.MethodDPO {
		return "preference data"
	}
	return "chat or completion data"
}

// evalSet reads the set a person picked for run. forQueue refuses what cannot be scored
// now (a dataset deleted since, or one without rows); a page may still show the scores
// kept on a deleted dataset. It returns the dataset (zero for the held-out set) or an
// *evalSetProblem.
func (a *app) evalSet(ctx context.Context, run store.Run, raw string, forQueue bool) (store.EvalDataset, error) {
	if raw == "" || raw == heldOutSet {
		return store.EvalDataset{}, nil
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return store.EvalDataset{}, &evalSetProblem{notYourSetMessage}
	}
	d, err := a.store.EvalDatasetOf(ctx, run.UserID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.EvalDataset{}, &evalSetProblem{notYourSetMessage}
	}
	if err != nil {
		return store.EvalDataset{}, err
	}
	name := evalSetName(d)
	if d.Deleted {
		if forQueue {
			return d, &evalSetProblem{fmt.Sprintf("%s was deleted, so it cannot be scored on: choose another of your datasets, or the run's held-out rows.", name)}
		}
		has, err := a.hasEvalsOn(ctx, run, d.ID)
		if err == nil && !has {
			err = &evalSetProblem{fmt.Sprintf("%s was deleted and holds no scores of this run: choose another of your datasets, or the run's held-out rows.", name)}
		}
		return d, err
	}
	if !run.Config.Method.Accepts(d.Format) {
		return d, &evalSetProblem{fmt.Sprintf("%s is a %s dataset; this run's snapshots (%s) are scored on %s. Choose a dataset of that format.", name, d.Format, run.Config.Method, evalSetFormats(run.Config.Method))}
	}
	if d.Rows == 0 {
		return d, &evalSetProblem{fmt.Sprintf("%s has no rows to score: choose a dataset with rows.", name)}
	}
	return d, nil
}

func (a *app) hasEvalsOn(ctx context.Context, run store.Run, datasetID int64) (bool, error) {
	sets, err := a.store.RunEvalDatasets(ctx, run.UserID, run.ID)
	for _, s := range sets {
		if s.ID == datasetID {
			return true, err
		}
	}
	return false, err
}

// evalSetName is how pages name a dataset used as an eval set.
func evalSetName(d store.EvalDataset) string {
	if d.Purged {
		return "A deleted dataset"
	}
	return "“" + d.Name + "”"
}

// evalSetValue is the form value of a set.
func evalSetValue(datasetID int64) string {
	if datasetID == 0 {
		return heldOutSet
	}
	return strconv.FormatInt(datasetID, 10)
}

// evalSetOptions lists the sets the leaderboard offers: the held-out rows, the person's
// datasets of a format the run takes, and datasets deleted since that hold scores.
func (a *app) evalSetOptions(ctx context.Context, run store.Run, selected int64) ([]views.EvalSetOption, error) {
	opts := []views.EvalSetOption{{Value: heldOutSet, Label: "The run's held-out rows", Selected: selected == 0}}
	datasets, err := a.store.Datasets(ctx, run.UserID)
	if err != nil {
		return nil, err
	}
	listed := map[int64]bool{}
	for _, d := range datasets {
		if !run.Config.Method.Accepts(d.Format) || d.Rows == 0 {
			continue
		}
		listed[d.ID] = true
		opts = append(opts, views.EvalSetOption{Value: evalSetValue(d.ID), Selected: d.ID == selected,
			Label: fmt.Sprintf("“%s” (%s, %s)", d.Name, d.Format, plural(d.Rows, "row", "rows"))})
	}
	kept, err := a.store.RunEvalDatasets(ctx, run.UserID, run.ID)
	if err != nil {
		return nil, err
	}
	for _, d := range kept {
		if !listed[d.ID] && d.Deleted {
			opts = append(opts, views.EvalSetOption{Value: evalSetValue(d.ID), Selected: d.ID == selected,
				Label: evalSetName(d) + " (deleted, scores kept)"})
		}
	}
	return opts, nil
}
