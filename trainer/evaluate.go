package trainer

import (
	"context"
	"math/rand/v2"
	"strings"

	"tunelab/trainer/protocol"
)

// HeldOut returns the rows Train scores its eval loss on: the given eval set, or the
// same seeded share of the training rows that Train's split holds out (the same random
// stream, so exactly those rows). DPO rows come back as their prompt and chosen answer.
func HeldOut(cfg Config, data TrainingData) []Example {
	rng := newRunRNG(cfg)
	if cfg.Method == MethodDPO {
		_, held := split(data.Pairs, data.EvalPairs, cfg.EvalFraction, rng)
		return mapSlice(held, func(p Pair) Example { return Example{Prompt: p.Prompt, Completion: p.Chosen} })
	}
	_, held := split(data.Examples, data.EvalExamples, cfg.EvalFraction, rng)
	return held
}

// newRunRNG is the random stream Train starts with; its first use is the split.
func newRunRNG(cfg Config) *rand.Rand { return rand.New(rand.NewPCG(uint64(cfg.Seed), 0x7275_6e)) }

// EvalScores is one model's result on a held-out set.
type EvalScores struct {
	Rows int
	// Loss is the per-byte negative log-likelihood of the reference answers (and the EOS
	// that ends each), over all rows' bytes: the eval_loss Train reports on the same rows.
	Loss float64
	// ExactMatch and Contains are the shares of greedy answers equal to (or containing)
	// the reference, after trimming spaces; set only when answers were scored.
	ExactMatch, Contains float64
}

// Evaluate scores m on rows, each cut to maxLen bytes as Train cuts them. With answers
// set it also generates a greedy answer of at most the reference's length plus maxExtra
// bytes for each row and compares it.
func Evaluate(ctx context.Context, m *Model, rows []Example, maxLen int, answers bool, progress func(done int)) (EvalScores, error) {
	const maxExtra = 32
	var s EvalScores
	w, sc := m.effective(nil), newScratch(m.Size())
	exact, contains, targets := 0, 0, 0
	for i, r := range rows {
		seq := encode(r.Prompt, r.Completion, maxLen)
		lp, err := w.seqLogProb(ctx, seq, 0, nil, false, sc)
		if err != nil {
			return EvalScores{}, err
		}
		s.Loss -= lp
		targets += seq.targets()
		if answers {
			got := strings.TrimSpace(m.Generate(r.Prompt, len(r.Completion)+maxExtra, 0, 0))
			want := strings.TrimSpace(r.Completion)
			if got == want {
				exact++
			}
			if strings.Contains(got, want) {
				contains++
			}
		}
		if progress != nil {
			progress(i + 1)
		}
	}
	s.Rows = len(rows)
	if s.Rows > 0 {
		s.Loss /= float64(max(targets, 1))
		s.ExactMatch = float64(exact) / float64(s.Rows)
		s.Contains = float64(contains) / float64(s.Rows)
	}
	return s, nil
}

// ConfigFor is the Config the built-in worker trains a job's config with, so the
// server can find the same held-out rows.
func ConfigFor(c protocol.Config) (Config, error) {
	cfg, _, err := jobSpec{protocol.Job{Config: c}}.trainerConfig()
	return cfg, err
}
