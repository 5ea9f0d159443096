package trainer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestTrainFullAndLoRALowerEvalLoss(t *testing.T) {
	for _, method := range []Method{MethodFull, MethodLoRA} {
		t.Run(string(method), func(t *testing.T) {
			cfg := smallConfig(method)
			var reports []map[string]float64
			res, err := Train(context.Background(), cfg, TrainingData{Examples: additionExamples(60, 1)}, Hooks{
				Metrics: func(step int, m map[string]float64) error {
					reports = append(reports, m)
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d steps, eval loss %.3f -> %.3f, train loss %.3f", method, res.Steps, res.FirstEvalLoss, res.FinalEvalLoss, res.FinalLoss)
			if !(res.FinalEvalLoss < 0.7*res.FirstEvalLoss) {
				t.Errorf("final eval loss %.3f is not clearly below the first %.3f", res.FinalEvalLoss, res.FirstEvalLoss)
			}
			last := reports[len(reports)-1]
			for _, k := range []string{"loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_sec"} {
				if v, ok := last[k]; !ok || math.IsNaN(v) {
					t.Errorf("last report lacks %q: %v", k, last)
				}
			}
		})
	}
}

func TestLoRALeavesBaseUnchanged(t *testing.T) {
	cfg := smallConfig(MethodLoRA)
	cfg.Epochs = 2
	base := NewModel(cfg.modelSize(), 99)
	before := base.Clone()
	res, err := Train(context.Background(), cfg, TrainingData{Examples: additionExamples(30, 2), Base: base}, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	for i, tns := range res.Model.w.tensors() {
		if !slices.Equal(tns, before.w.tensors()[i]) || !slices.Equal(base.w.tensors()[i], before.w.tensors()[i]) {
			t.Fatalf("base tensor %d changed during a lora run", i)
		}
	}
	if res.Model.lora == nil || !slices.ContainsFunc(res.Model.lora.b2, func(v float64) bool { return v != 0 }) {
		t.Fatal("lora adapters were not trained")
	}
}

func TestDPORaisesRewardAccuracy(t *testing.T) {
	cfg := smallConfig(MethodDPO)
	cfg.Epochs = 10
	cfg.LearningRate = 5e-3
	cfg.DPOBeta = 0.5
	cfg.LogEvery = 2
	var margins []float64
	res, err := Train(context.Background(), cfg, TrainingData{Pairs: colourPairs(24)}, Hooks{
		Metrics: func(step int, m map[string]float64) error {
			if v, ok := m["reward_margin"]; ok {
				margins = append(margins, v)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	acc := res.Metrics["reward_accuracy"]
	t.Logf("dpo: loss %.3f, eval loss %.3f -> %.3f, reward accuracy %.2f, margins %.3f -> %.3f", res.FinalLoss, res.FirstEvalLoss, res.FinalEvalLoss, acc, margins[0], margins[len(margins)-1])
	if acc <= 0.8 {
		t.Errorf("reward accuracy %.2f, want above 0.8", acc)
	}
	if margins[len(margins)-1] <= margins[0] {
		t.Errorf("reward margin did not grow: %.3f -> %.3f", margins[0], margins[len(margins)-1])
	}
	if !(res.FinalEvalLoss < res.FirstEvalLoss) {
		t.Errorf("dpo eval loss did not fall: %.3f -> %.3f", res.FirstEvalLoss, res.FinalEvalLoss)
	}
}

func TestTrainRefusesWrongData(t *testing.T) {
	_, err := Train(context.Background(), smallConfig(MethodDPO), TrainingData{Examples: additionExamples(5, 1)}, Hooks{})
	if err == nil || !strings.Contains(err.Error(), "preference rows") {
		t.Errorf("dpo on completion rows: %v", err)
	}
	_, err = Train(context.Background(), smallConfig(MethodFull), TrainingData{Pairs: colourPairs(5)}, Hooks{})
	if err == nil || !strings.Contains(err.Error(), "preference rows are for dpo") {
		t.Errorf("full on preference rows: %v", err)
	}
	cfg := smallConfig(MethodFull)
	cfg.Method = "qlora"
	if _, err := Train(context.Background(), cfg, TrainingData{Examples: additionExamples(5, 1)}, Hooks{}); !errors.Is(err, ErrQLoRA) {
		t.Errorf("qlora: %v", err)
	}
}

func TestCancelReturnsWithinASecond(t *testing.T) {
	cfg := smallConfig(MethodFull)
	cfg.Epochs = 100000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var once bool
		_, err := Train(ctx, cfg, TrainingData{Examples: additionExamples(60, 3)}, Hooks{
			Progress: func(step, total int) {
				if step == 3 && !once {
					once = true
					close(started)
				}
			},
		})
		done <- err
	}()
	<-started
	cancel()
	at := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Train returned %v, want context.Canceled", err)
		}
		t.Logf("returned %v after cancel", time.Since(at))
	case <-time.After(time.Second):
		t.Fatal("Train still running a second after cancel")
	}
}

// TestCancelInsideALongStep cancels while one step takes several seconds,
// so only the checks inside a batch can meet the deadline.
func TestCancelInsideALongStep(t *testing.T) {
	cfg := smallConfig(MethodFull)
	cfg.MaxSeqLen, cfg.HiddenDim, cfg.BatchSize = 4096, 256, 64
	long := make([]Example, 64)
	for i := range long {
		long[i] = Example{Prompt: "go:", Completion: strings.Repeat("abcdefgh", 500)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// Not a timing check (the machine may be busy): a step that was under way when the
	// deadline passed must never complete. Without the checks inside a batch it would,
	// and Progress would hear of it after the deadline.
	finishedLate := 0
	hooks := Hooks{Progress: func(step, total int) {
		if ctx.Err() != nil {
			finishedLate++
		}
	}}
	_, err := Train(ctx, cfg, TrainingData{Examples: long}, hooks)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Train returned %v, want context.DeadlineExceeded", err)
	}
	if finishedLate > 0 {
		t.Fatalf("%d step(s) ran to completion after the deadline", finishedLate)
	}
}

func TestSameSeedSameRun(t *testing.T) {
	cfg := smallConfig(MethodFull)
	cfg.Epochs = 2
	data := TrainingData{Examples: additionExamples(40, 4)}
	a, err := Train(context.Background(), cfg, data, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Train(context.Background(), cfg, data, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if a.FinalLoss != b.FinalLoss || a.FinalEvalLoss != b.FinalEvalLoss {
		t.Errorf("same seed, different runs: loss %v vs %v, eval %v vs %v", a.FinalLoss, b.FinalLoss, a.FinalEvalLoss, b.FinalEvalLoss)
	}
	cfg.Seed++
	c, err := Train(context.Background(), cfg, data, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if c.FinalLoss == a.FinalLoss {
		t.Error("a different seed gave the very same loss")
	}
}

func TestSnapshots(t *testing.T) {
	for _, tc := range []struct {
		method    Method
		wantNames []string
	}{
		{MethodLoRA, []string{"hidden.lora_A", "hidden.lora_B", "output.lora_A", "output.lora_B"}},
		{MethodFull, []string{"embedding.weight", "hidden.bias", "hidden.weight", "output.bias", "output.weight"}},
	} {
		t.Run(string(tc.method), func(t *testing.T) {
			cfg := smallConfig(tc.method)
			cfg.Epochs = 2
			cfg.SnapshotEvery = 3
			type snap struct {
				step  int
				final bool
				data  []byte
			}
			var snaps []snap
			res, err := Train(context.Background(), cfg, TrainingData{Examples: additionExamples(40, 5)}, Hooks{
				Snapshot: func(step int, final bool, write func(io.Writer) error) error {
					var buf bytes.Buffer
					if err := write(&buf); err != nil {
						return err
					}
					snaps = append(snaps, snap{step, final, buf.Bytes()})
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			// 36 training rows in batches of 8: 5 steps an epoch, 10 in all.
			var steps []int
			for _, s := range snaps {
				steps = append(steps, s.step)
			}
			if !slices.Equal(steps, []int{3, 6, 9, 10}) || !snaps[len(snaps)-1].final || snaps[0].final {
				t.Fatalf("snapshots at %v (final last: %v), want 3, 6, 9 and a final 10", steps, snaps[len(snaps)-1].final)
			}
			tensors, meta, err := ReadSafetensors(bytes.NewReader(snaps[len(snaps)-1].data))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tn := range tensors {
				names = append(names, tn.Name)
			}
			if !slices.Equal(names, tc.wantNames) {
				t.Errorf("tensors %v, want %v", names, tc.wantNames)
			}
			if Method(meta["method"]) != tc.method || meta["vocab_size"] != "257" || (tc.method == MethodLoRA && (meta["rank"] != "4" || meta["alpha"] != "8")) {
				t.Errorf("metadata %v", meta)
			}
			loaded, err := ReadModel(bytes.NewReader(snaps[len(snaps)-1].data), nil)
			if err != nil {
				t.Fatal(err)
			}
			prompt := "Q: add 1 and 2\nA:"
			if got, want := loaded.Generate(prompt, 8, 0, 1), res.Model.Generate(prompt, 8, 0, 1); got != want {
				t.Errorf("loaded snapshot generates %q, trained model %q", got, want)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	m := NewModel(ModelSize{Context: 4, Embed: 4, Hidden: 8}, 1)
	a := m.Generate("héllo", 40, 1.0, 3)
	if a != m.Generate("héllo", 40, 1.0, 3) {
		t.Error("same seed, different samples")
	}
	if len(a) > 40 || !utf8.ValidString(a) {
		t.Errorf("sample %q: over 40 bytes or not UTF-8", a)
	}
}

func TestFlattenChat(t *testing.T) {
	ex := FlattenChat([]Message{
		{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "2+2?"}, {"assistant", "4"}, {"user", "thanks"},
	})
	want := Example{Prompt: "System: Be brief.\nUser: Hi\nAssistant: Hello\nUser: 2+2?\nAssistant: ", Completion: "4"}
	if ex != want {
		t.Errorf("got %+v, want %+v", ex, want)
	}
}

func TestEncodeKeepsCompletion(t *testing.T) {
	s := encode(strings.Repeat("p", 100), "answer", 10)
	if len(s.tokens) != 10 || s.targets() != 7 || s.tokens[len(s.tokens)-1] != EOS {
		t.Errorf("tokens %v start %d", s.tokens, s.start)
	}
	s = encode("p", strings.Repeat("c", 20), 8)
	if len(s.tokens) != 8 || s.start != 0 {
		t.Errorf("long completion: tokens %v start %d", s.tokens, s.start)
	}
}
