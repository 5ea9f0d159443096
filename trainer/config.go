package trainer

import (
	"errors"
	"fmt"
	"math"
)

// Method is how a run trains, named as in the job spec's "method".
type Method string

// Methods the CPU trainer offers. qlora needs 4-bit kernels and is GPU only.
const (
	MethodFull Method = "full"
	MethodLoRA Method = "lora"
	MethodDPO  Method = "dpo"
)

// methodQLoRA is refused with ErrQLoRA: it needs 4-bit kernels.
const methodQLoRA Method = "qlora"

// Methods lists the methods the CPU trainer offers, for backends to show.
var Methods = []Method{MethodFull, MethodLoRA, MethodDPO}

// Config is one training run's settings.
type Config struct {
	Method       Method  // full, lora or dpo
	Epochs       int     // passes over the training rows
	LearningRate float64 // peak learning rate after warm-up
	BatchSize    int     // rows (or pairs) per step
	LoRARank     int     // adapter rank (lora)
	LoRAAlpha    float64 // adapters are scaled by alpha/rank (lora)
	MaxSeqLen    int     // bytes per row, prompt+completion+EOS
	Seed         int64   // same seed, same data, same config: same run
	EvalFraction float64 // share of rows held out for eval loss when no eval set is given
	DPOBeta      float64 // strength of the DPO preference (dpo)

	WarmupSteps int    // linear warm-up; 0 means 5% of the steps
	Schedule    string // decay after warm-up: cosine or linear

	ContextChars int // bytes of context the model sees
	EmbedDim     int // embedding width per byte
	HiddenDim    int // hidden layer width

	LogEvery      int // steps between metric reports (with an eval)
	SnapshotEvery int // steps between snapshots; 0 saves only at the end
}

// DefaultConfig is tuned so a run on about 200 short rows finishes in
// roughly a minute on 2 cores with a clearly falling loss.
func DefaultConfig() Config {
	return Config{
		Method:        MethodLoRA,
		Epochs:        60,
		LearningRate:  3e-3,
		BatchSize:     16,
		LoRARank:      16,
		LoRAAlpha:     32,
		MaxSeqLen:     512,
		Seed:          42,
		EvalFraction:  0.1,
		DPOBeta:       0.1,
		Schedule:      "cosine",
		ContextChars:  24,
		EmbedDim:      24,
		HiddenDim:     256,
		LogEvery:      10,
		SnapshotEvery: 0,
	}
}

// ErrQLoRA explains why qlora is refused here.
var ErrQLoRA = errors.New("method: qlora needs a GPU backend; the built-in CPU trainer offers full, lora and dpo")

// Validate reports every invalid field, one message each, named as in the
// run form so the caller can show them beside the fields.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.Method {
	case MethodFull, MethodLoRA, MethodDPO:
	case methodQLoRA:
		errs = append(errs, ErrQLoRA)
	default:
		bad("method: %q is unknown; use full, lora or dpo", c.Method)
	}
	if c.Epochs < 1 {
		bad("epochs: must be at least 1, got %d", c.Epochs)
	}
	if !(c.LearningRate > 0 && c.LearningRate <= 1) {
		bad("learning rate: must be above 0 and at most 1, got %g", c.LearningRate)
	}
	if c.BatchSize < 1 || c.BatchSize > 512 {
		bad("batch size: must be between 1 and 512, got %d", c.BatchSize)
	}
	if c.Method == MethodLoRA {
		if c.LoRARank < 1 || c.LoRARank > 256 {
			bad("lora rank: must be between 1 and 256, got %d", c.LoRARank)
		}
		if !(c.LoRAAlpha > 0) || math.IsInf(c.LoRAAlpha, 0) {
			bad("lora alpha: must be above 0, got %g", c.LoRAAlpha)
		}
	}
	if c.MaxSeqLen < 8 || c.MaxSeqLen > 4096 {
		bad("max sequence length: must be between 8 and 4096, got %d", c.MaxSeqLen)
	}
	if !(c.EvalFraction >= 0 && c.EvalFraction <= 0.5) {
		bad("validation split: must be between 0 and 0.5, got %g", c.EvalFraction)
	}
	if c.Method == MethodDPO && !(c.DPOBeta > 0 && c.DPOBeta <= 10) {
		bad("dpo beta: must be above 0 and at most 10, got %g", c.DPOBeta)
	}
	if c.WarmupSteps < 0 {
		bad("warm-up steps: must not be negative, got %d", c.WarmupSteps)
	}
	if c.Schedule != "cosine" && c.Schedule != "linear" {
		bad("schedule: %q is unknown; use cosine or linear", c.Schedule)
	}
	if c.ContextChars < 1 || c.ContextChars > 128 {
		bad("context chars: must be between 1 and 128, got %d", c.ContextChars)
	}
	if c.EmbedDim < 1 || c.EmbedDim > 256 {
		bad("embedding size: must be between 1 and 256, got %d", c.EmbedDim)
	}
	if c.HiddenDim < 1 || c.HiddenDim > 4096 {
		bad("hidden size: must be between 1 and 4096, got %d", c.HiddenDim)
	}
	if c.LogEvery < 1 {
		bad("log every: must be at least 1 step, got %d", c.LogEvery)
	}
	if c.SnapshotEvery < 0 {
		bad("snapshot every: must not be negative, got %d", c.SnapshotEvery)
	}
	return errors.Join(errs...)
}

func (c Config) modelSize() ModelSize {
	return ModelSize{Context: c.ContextChars, Embed: c.EmbedDim, Hidden: c.HiddenDim}
}
