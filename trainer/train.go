package trainer

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Hooks are how Train talks to its caller; every field may be nil. An error
// from a hook stops the run and Train returns it.
type Hooks struct {
	// Metrics gets "loss", "eval_loss", "learning_rate", "grad_norm",
	// "tokens_per_sec" every LogEvery steps and at the last step, plus
	// "reward_accuracy" and "reward_margin" for dpo (train window; the
	// "eval_" versions on the eval pairs). Step 0 reports only the eval
	// metrics of the starting weights.
	Metrics func(step int, m map[string]float64) error
	// Progress is called after every step.
	Progress func(step, totalSteps int)
	// Snapshot is called every SnapshotEvery steps and once at the end with
	// final set; write puts a safetensors file into the writer it is given.
	Snapshot func(step int, final bool, write func(io.Writer) error) error
	// Stop is asked before every step; true ends training cleanly there: the current
	// weights go to Snapshot as the final snapshot and Train returns with Stopped set.
	Stop func() bool
}

// Result summarises a finished run.
type Result struct {
	Steps  int
	Tokens int64 // bytes of prompt+completion fed to training steps
	// FinalLoss is the mean train loss over the last logging window.
	FinalLoss float64
	// FirstEvalLoss is measured on the starting weights, FinalEvalLoss on
	// the trained ones; both are NaN when there is no eval set.
	FirstEvalLoss, FinalEvalLoss float64
	Metrics                      map[string]float64 // the last report
	Model                        *Model
	Duration                     time.Duration
	// Stopped says Hooks.Stop ended training before the last step (Steps says where).
	Stopped bool
}

// Train runs one fine-tuning job. It returns ctx.Err() within a second of
// ctx being done, checking between steps and inside them.
func Train(ctx context.Context, cfg Config, data TrainingData, hooks Hooks) (Result, error) {
	started := time.Now()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	rng := newRunRNG(cfg)
	r := &run{cfg: cfg, hooks: hooks, rng: rng}
	if err := r.prepareData(data); err != nil {
		return Result{}, err
	}
	model := NewModel(cfg.modelSize(), cfg.Seed)
	if data.Base != nil {
		model = data.Base.Clone()
		model.lora = nil // adapters of an earlier run are not this run's
	}
	r.baseSeed = cfg.Seed
	if data.Init != nil {
		var err error
		if model, err = data.Init.start(cfg); err != nil {
			return Result{}, err
		}
		r.baseSeed, r.baseGiven = data.Init.baseSeed, data.Init.baseGiven
	}
	if cfg.Method == MethodLoRA && model.lora == nil {
		model.addLoRA(cfg.LoRARank, cfg.LoRAAlpha, rng)
	}
	r.model, r.baseGiven = model, r.baseGiven || data.Base != nil
	r.obj = newObjective(model, cfg)
	if cfg.Method == MethodDPO {
		// The reference is the frozen starting policy; only its log-probs
		// are ever needed, so compute them once.
		ref := model.w.clone()
		if err := r.obj.referenceLogProbs(ctx, ref, r.pairs); err != nil {
			return Result{}, err
		}
		if err := r.obj.referenceLogProbs(ctx, ref, r.evalPairs); err != nil {
			return Result{}, err
		}
	}
	res, err := r.loop(ctx)
	res.Duration = time.Since(started)
	return res, err
}

// run is one Train call's state.
type run struct {
	cfg       Config
	hooks     Hooks
	rng       *rand.Rand
	model     *Model
	baseGiven bool
	baseSeed  int64 // the seed the base weights come from (snapshot metadata)
	obj       *objective

	seqs, evalSeqs   []sequence
	pairs, evalPairs []pairSeq
}

func (r *run) prepareData(d TrainingData) error {
	maxLen := r.cfg.MaxSeqLen
	if r.cfg.Method == MethodDPO {
		if len(d.Pairs) == 0 {
			return errors.New("dataset: dpo needs preference rows (prompt, chosen, rejected)")
		}
		train, eval := split(d.Pairs, d.EvalPairs, r.cfg.EvalFraction, r.rng)
		encodePair := func(p Pair) pairSeq {
			return pairSeq{chosen: encode(p.Prompt, p.Chosen, maxLen), rejected: encode(p.Prompt, p.Rejected, maxLen)}
		}
		r.pairs, r.evalPairs = mapSlice(train, encodePair), mapSlice(eval, encodePair)
		return nil
	}
	if len(d.Examples) == 0 {
		if len(d.Pairs) > 0 {
			return errors.New("dataset: " + string(r.cfg.Method) + " needs chat or completion rows; preference rows are for dpo")
		}
		return errors.New("dataset: no training rows")
	}
	train, eval := split(d.Examples, d.EvalExamples, r.cfg.EvalFraction, r.rng)
	encodeExample := func(e Example) sequence { return encode(e.Prompt, e.Completion, maxLen) }
	r.seqs, r.evalSeqs = mapSlice(train, encodeExample), mapSlice(eval, encodeExample)
	return nil
}

// split holds out a seeded random share of rows unless an eval set is
// given; at least one row stays for training.
func split[T any](rows, eval []T, fraction float64, rng *rand.Rand) (train, held []T) {
	if len(eval) > 0 {
		return rows, eval
	}
	n := int(math.Round(fraction * float64(len(rows))))
	if fraction > 0 && n == 0 {
		n = 1
	}
	n = min(n, len(rows)-1)
	if n <= 0 {
		return rows, nil
	}
	perm := rng.Perm(len(rows))
	for i, j := range perm {
		if i < n {
			held = append(held, rows[j])
		} else {
			train = append(train, rows[j])
		}
	}
	return train, held
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func (r *run) rows() int {
	if r.cfg.Method == MethodDPO {
		return len(r.pairs)
	}
	return len(r.seqs)
}

func (r *run) loop(ctx context.Context) (Result, error) {
	cfg := r.cfg
	stepsPerEpoch := (r.rows() + cfg.BatchSize - 1) / cfg.BatchSize
	total := cfg.Epochs * stepsPerEpoch
	warmup := warmupSteps(cfg, total)
	res := Result{FirstEvalLoss: math.NaN(), FinalEvalLoss: math.NaN(), Model: r.model}

	first, err := r.evaluate(ctx)
	if err != nil {
		return res, err
	}
	if v, ok := first["eval_loss"]; ok {
		res.FirstEvalLoss = v
		if err := r.report(0, first); err != nil {
			return res, err
		}
	}

	var window stepStats
	var windowSteps int
	var windowTime time.Duration
	step := 0
	for range cfg.Epochs {
		order := r.rng.Perm(r.rows())
		for lo := 0; lo < len(order); lo += cfg.BatchSize {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if r.hooks.Stop != nil && r.hooks.Stop() {
				res.Stopped = true
				return res, r.snapshot(step, true)
			}
			t0 := time.Now()
			lr := learningRate(cfg.LearningRate, step, total, warmup, cfg.Schedule)
			st, err := r.gradients(ctx, order[lo:min(lo+cfg.BatchSize, len(order))])
			if err != nil {
				return res, err
			}
			step++
			norm := adamStep(r.obj.params, lr, step)
			windowTime += time.Since(t0)
			res.Steps, res.Tokens = step, res.Tokens+int64(st.tokens)
			window = sumStats([]stepStats{window, st})
			windowSteps++
			if r.hooks.Progress != nil {
				r.hooks.Progress(step, total)
			}
			if step%cfg.LogEvery == 0 || step == total {
				m, err := r.evaluate(ctx)
				if err != nil {
					return res, err
				}
				m["loss"] = window.loss / float64(windowSteps)
				m["learning_rate"] = lr
				m["grad_norm"] = norm
				m["tokens_per_sec"] = float64(window.tokens) / max(windowTime.Seconds(), 1e-9)
				if cfg.Method == MethodDPO {
					m["reward_accuracy"] = window.correct / float64(window.n)
					m["reward_margin"] = window.margin / float64(window.n)
				}
				res.FinalLoss, res.Metrics = m["loss"], m
				if v, ok := m["eval_loss"]; ok {
					res.FinalEvalLoss = v
				}
				if err := r.report(step, m); err != nil {
					return res, err
				}
				window, windowSteps, windowTime = stepStats{}, 0, 0
			}
			if cfg.SnapshotEvery > 0 && step%cfg.SnapshotEvery == 0 && step != total {
				if err := r.snapshot(step, false); err != nil {
					return res, err
				}
			}
		}
	}
	return res, r.snapshot(step, true)
}

func (r *run) gradients(ctx context.Context, idx []int) (stepStats, error) {
	if r.cfg.Method == MethodDPO {
		batch := make([]pairSeq, len(idx))
		for i, j := range idx {
			batch[i] = r.pairs[j]
		}
		return r.obj.dpoGradients(ctx, batch)
	}
	batch := make([]sequence, len(idx))
	for i, j := range idx {
		batch[i] = r.seqs[j]
	}
	return r.obj.sftGradients(ctx, batch)
}

// evaluate returns the eval metrics of the current weights (none without
// an eval set).
func (r *run) evaluate(ctx context.Context) (map[string]float64, error) {
	m := map[string]float64{}
	if r.cfg.Method == MethodDPO {
		if len(r.evalPairs) == 0 {
			return m, nil
		}
		st, err := r.obj.evalDPO(ctx, r.evalPairs)
		if err != nil {
			return nil, err
		}
		n := float64(st.n)
		m["eval_loss"], m["eval_reward_accuracy"], m["eval_reward_margin"] = st.loss/n, st.correct/n, st.margin/n
		return m, nil
	}
	if len(r.evalSeqs) == 0 {
		return m, nil
	}
	loss, err := r.obj.evalSFT(ctx, r.evalSeqs)
	if err != nil {
		return nil, err
	}
	m["eval_loss"] = loss
	return m, nil
}

func (r *run) report(step int, m map[string]float64) error {
	if r.hooks.Metrics == nil {
		return nil
	}
	return r.hooks.Metrics(step, m)
}

func (r *run) snapshot(step int, final bool) error {
	if r.hooks.Snapshot == nil {
		return nil
	}
	meta := snapshotMetadata(r.cfg, step, r.baseGiven)
	meta["seed"] = strconv.FormatInt(r.baseSeed, 10) // a continued run's base is its source's
	return r.hooks.Snapshot(step, final, func(w io.Writer) error {
		return WriteSafetensors(w, r.model.snapshotTensors(), meta)
	})
}
