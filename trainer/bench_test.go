package trainer

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkTrainStep is one DefaultConfig step (gradients and Adam) on a
// batch of sample-like rows.
func BenchmarkTrainStep(b *testing.B) {
	for _, method := range []Method{MethodLoRA, MethodFull} {
		b.Run(string(method), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Method = method
			m := NewModel(cfg.modelSize(), cfg.Seed)
			if method == MethodLoRA {
				m.addLoRA(cfg.LoRARank, cfg.LoRAAlpha, rand.New(rand.NewPCG(1, 1)))
			}
			o := newObjective(m, cfg)
			var batch []sequence
			for _, ex := range sampleLikeExamples()[:cfg.BatchSize] {
				batch = append(batch, encode(ex.Prompt, ex.Completion, cfg.MaxSeqLen))
			}
			for i := 0; b.Loop(); i++ {
				if _, err := o.sftGradients(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
				adamStep(o.params, 1e-3, i+1)
			}
		})
	}
}

// BenchmarkDefaultRun trains DefaultConfig on ~200 generated chat rows, once per method,
// to check the "about a minute on 2 cores" target: go test -run X -bench DefaultRun -benchtime 1x ./trainer
func BenchmarkDefaultRun(b *testing.B) {
	for _, method := range []Method{MethodLoRA, MethodFull} {
		b.Run(string(method), func(b *testing.B) {
			for b.Loop() {
				cfg := DefaultConfig()
				cfg.Method = method
				steps := 0
				started := time.Now()
				res, err := Train(context.Background(), cfg, TrainingData{Examples: sampleLikeExamples()}, Hooks{
					Progress: func(step, total int) { steps = total },
				})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(started).Seconds(), "s/run")
				b.ReportMetric(float64(steps), "steps")
				b.ReportMetric(res.FirstEvalLoss, "first_eval_loss")
				b.ReportMetric(res.FinalEvalLoss, "final_eval_loss")
			}
		})
	}
}
