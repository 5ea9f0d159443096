package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"tunelab/store"
	"tunelab/trainer"
)

// Evaluation of GPU snapshots (Python-worker runs): the scoring runs on the snapshot's live
// deployment, whose inference server scores batches of rows in the worker's data format with
// the loaded model (POST /tunelab/score, docs/worker-api.md). Its GPU time is the
// deployment's, metered as such. The loss is nats per token of the model's own tokenizer.

// errEvalNeedsDeployment fails a GPU snapshot's job when the person has no live deployment of it.
var errEvalNeedsDeployment = &evalSetProblem{"Deploy this snapshot first, then evaluate: a GPU snapshot is scored by its live deployment's inference server (its GPU time counts as the deployment's)."}

const errNoDeployedSnapshot = "No snapshot of this run has a live deployment: deploy a snapshot first, then evaluate it (GPU snapshots are scored by their deployment)."

// deployedSnapshots says which of the person's snapshots have a live worker deployment.
func (a *app) deployedSnapshots(ctx context.Context, userID int64) (map[int64]bool, error) {
	deps, err := a.store.Deployments(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := map[int64]bool{}
	for _, d := range deps {
		if d.Worker && d.Live() {
			out[d.SnapshotID] = true
		}
	}
	return out, nil
}

// evalBatchRows and evalBatchBytes bound one scoring request (the inference server takes at
// most 16 rows and 1 MiB).
const (
	evalBatchRows  = 8
	evalBatchBytes = 512 << 10
)

// liveDeploymentOf returns the person's live worker deployment of the snapshot, if any.
func (a *app) liveDeploymentOf(ctx context.Context, userID, snapshotID int64) (store.Deployment, bool, error) {
	deps, err := a.store.Deployments(ctx, userID)
	if err != nil {
		return store.Deployment{}, false, err
	}
	for _, d := range deps {
		if d.Worker && d.SnapshotID == snapshotID && d.Live() {
			return d, true, nil
		}
	}
	return store.Deployment{}, false, nil
}

// scoreGPUSnapshot scores a GPU snapshot's job on its live deployment.
func (a *app) scoreGPUSnapshot(ctx context.Context, job store.SnapshotEval, run store.Run) (trainer.EvalScores, bool, error) {
	var s trainer.EvalScores
	if _, err := a.store.Snapshot(ctx, job.UserID, job.RunID, job.SnapshotID); err != nil {
		return s, false, err
	}
	d, ok, err := a.liveDeploymentOf(ctx, job.UserID, job.SnapshotID)
	if err != nil {
		return s, false, err
	}
	if !ok {
		return s, false, errEvalNeedsDeployment
	}
	if state := d.State(a.now(), a.proxyStale()); state != store.DeployLive || d.Job.URL == "" {
		return s, false, &evalSetProblem{fmt.Sprintf("The deployment `%s` of this snapshot is %s, not live: evaluate again once it is live (see the Deployments page).", d.Name, state)}
	}
	key, err := a.serveKey(d)
	if err != nil {
		return s, false, err
	}
	rows, format, err := a.gpuEvalRows(ctx, job, run)
	if err != nil {
		return s, false, err
	}
	rows = rows[:min(len(rows), evalMaxRows)]
	answers := format == trainer.FormatChat
	var nll float64
	var tokens, exact, contains int
	for start := 0; start < len(rows); {
		end, size := start, 0
		for end < len(rows) && end-start < evalBatchRows && (end == start || size+len(rows[end]) <= evalBatchBytes) {
			size += len(rows[end])
			end++
		}
		if size > 1<<20-4096 { // a lone row too big for the inference server's 1 MiB body
			return s, false, &evalSetProblem{fmt.Sprintf("Row %d of the eval set is over 1 MiB, more than the inference server takes in one request: remove or shorten it.", start+1)}
		}
		var out scoreReply
		req := scoreRequest{Format: format, Rows: rows[start:end], MaxSeqLen: run.Config.MaxSeqLen, Answers: answers}
		if err := a.callDeployment(ctx, d, key, "/tunelab/score", req, &out); err != nil {
			return s, false, err
		}
		if len(out.Rows) != end-start {
			return s, false, fmt.Errorf("the inference server scored %d rows of %d", len(out.Rows), end-start)
		}
		for _, r := range out.Rows {
			nll, tokens = nll+r.NLL, tokens+r.Tokens
			if r.Exact {
				exact++
			}
			if r.Contains {
				contains++
			}
		}
		start = end
		if start < len(rows) {
			if err := a.store.SetEvalProgress(ctx, job.ID, start); err != nil {
				a.log.Warn("evaluations: progress", "err", err)
			}
		}
	}
	if tokens == 0 {
		return s, false, &evalSetProblem{fmt.Sprintf("No row of the eval set has answer tokens to score within max_seq_len %d.", run.Config.MaxSeqLen)}
	}
	s = trainer.EvalScores{Rows: len(rows), Loss: nll / float64(tokens)}
	if answers {
		s.ExactMatch, s.Contains = float64(exact)/float64(len(rows)), float64(contains)/float64(len(rows))
	}
	return s, answers, nil
}

type scoreRequest struct {
	Format    string            `json:"format"`
	Rows      []json.RawMessage `json:"rows"`
	MaxSeqLen int               `json:"max_seq_len"`
	Answers   bool              `json:"answers"`
}

type scoreReply struct {
	Rows []struct {
		NLL      float64 `json:"nll"`
		Tokens   int     `json:"tokens"`
		Exact    bool    `json:"exact"`
		Contains bool    `json:"contains"`
	} `json:"rows"`
}

// gpuEvalRows returns the rows a GPU snapshot's job scores, as the worker reads them (one
// JSON object a line), and their format: the chosen dataset's, the run's validation
// dataset's, or exactly the rows the worker held out with the run's validation split.
func (a *app) gpuEvalRows(ctx context.Context, job store.SnapshotEval, run store.Run) ([]json.RawMessage, string, error) {
	if job.DatasetID != 0 {
		if _, err := a.evalSet(ctx, run, evalSetValue(job.DatasetID), true); err != nil {
			return nil, "", err
		}
		return a.rawDatasetRows(ctx, job.DatasetID)
	}
	if run.EvalDatasetID != 0 {
		return a.rawDatasetRows(ctx, run.EvalDatasetID)
	}
	rows, format, err := a.rawDatasetRows(ctx, run.DatasetID)
	if err != nil {
		return nil, "", err
	}
	var held []json.RawMessage
	for i, h := range pySplitHeld(len(rows), run.Config.ValidationSplit, run.Config.Seed) {
		if h {
			held = append(held, rows[i])
		}
	}
	if len(held) == 0 {
		return nil, "", errors.New("this run holds out no rows (validation split 0 and no validation dataset), so there is nothing to score")
	}
	return held, format, nil
}

// rawDatasetRows reads a dataset's non-blank lines as the worker's data.read_rows does.
func (a *app) rawDatasetRows(ctx context.Context, id int64) ([]json.RawMessage, string, error) {
	d, err := a.store.DatasetByID(ctx, id)
	if err != nil {
		return nil, "", err
	}
	f, err := a.vault.Open(d.FileID)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	var rows []json.RawMessage
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(rows) == 0 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			if !json.Valid(line) {
				return nil, "", fmt.Errorf("dataset line %d is not JSON", len(rows)+1)
			}
			rows = append(rows, json.RawMessage(line))
		}
		if err == io.EOF {
			return rows, string(d.Format), nil
		}
		if err != nil {
			return nil, "", err
		}
	}
}
