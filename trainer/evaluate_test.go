package trainer

import (
	"context"
	"math"
	"testing"
)

// A model trained on one chat answer scores it exactly; a shorter reference is only
// contained in its answer, an unrelated one neither.
func TestEvaluateExactMatchAndContains(t *testing.T) {
	ex := FlattenChat([]Message{{Role: "user", Content: "Greet:"}, {Role: "assistant", Content: "hello there"}})
	cfg := DefaultConfig()
	cfg.Method, cfg.Epochs, cfg.LearningRate, cfg.BatchSize = MethodFull, 30, 1e-2, 8
	cfg.MaxSeqLen, cfg.ContextChars, cfg.EmbedDim, cfg.HiddenDim, cfg.Seed, cfg.LogEvery = 64, 6, 8, 32, 7, 50
	rows := make([]Example, 16)
	for i := range rows {
		rows[i] = ex
	}
	res, err := Train(context.Background(), cfg, TrainingData{Examples: rows, EvalExamples: rows[:2]}, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Model.Generate(ex.Prompt, 40, 0, 0); got != "hello there" {
		t.Fatalf("the trained model answers %q", got)
	}
	eval := []Example{ex, {Prompt: ex.Prompt, Completion: "hello"}, {Prompt: ex.Prompt, Completion: "goodbye"}}
	s, err := Evaluate(context.Background(), res.Model, eval, 64, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Rows != 3 || math.Abs(s.ExactMatch-1.0/3) > 1e-9 || math.Abs(s.Contains-2.0/3) > 1e-9 {
		t.Fatalf("scores %+v, want 3 rows, exact 1/3, contains 2/3", s)
	}
	base, err := Evaluate(context.Background(), NewModel(res.Model.Size(), 7), eval[:1], 64, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	trained, _ := Evaluate(context.Background(), res.Model, eval[:1], 64, true, nil)
	// The loss is the eval_loss Train reported on the same rows.
	if again, _ := Evaluate(context.Background(), res.Model, rows[:2], 64, false, nil); math.Abs(again.Loss-res.FinalEvalLoss) > 1e-9 {
		t.Fatalf("loss on Train's eval rows %v, Train reported %v", again.Loss, res.FinalEvalLoss)
	}
	if !(trained.Loss < base.Loss) || base.ExactMatch != 0 || trained.ExactMatch != 1 {
		t.Fatalf("trained %+v vs base %+v", trained, base)
	}
}

// HeldOut picks exactly the rows Train's split holds out: the same count as planRun,
// none of them in the training share.
func TestHeldOutIsTrainsSplit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EvalFraction, cfg.Seed = 0.2, 11
	var rows []Example
	for i := range 30 {
		rows = append(rows, Example{Prompt: string(rune('a' + i%26)), Completion: string(rune('0' + i%10))})
		rows[i].Prompt += string(rune('A' + i))
	}
	held := HeldOut(cfg, TrainingData{Examples: rows})
	if len(held) != planRun(cfg, TrainingData{Examples: rows}).evalRows {
		t.Fatalf("held %d rows", len(held))
	}
	r := &run{cfg: cfg, rng: newRunRNG(cfg)}
	if err := r.prepareData(TrainingData{Examples: rows}); err != nil {
		t.Fatal(err)
	}
	for i, e := range held {
		if want := encode(e.Prompt, e.Completion, cfg.MaxSeqLen); string(intsToBytes(want.tokens)) != string(intsToBytes(r.evalSeqs[i].tokens)) {
			t.Fatalf("held-out row %d differs from Train's", i)
		}
	}
	if got := HeldOut(cfg, TrainingData{Examples: rows, EvalExamples: rows[:3]}); len(got) != 3 {
		t.Fatalf("a given eval set: %d rows", len(got))
	}
}

func intsToBytes(v []int) []byte {
	out := make([]byte, 0, len(v)*2)
	for _, x := range v {
		out = append(out, byte(x), byte(x>>8))
	}
	return out
}
