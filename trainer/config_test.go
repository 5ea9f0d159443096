package trainer

import (
	"math"
	"strings"
	"testing"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateMessages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"unknown method", func(c *Config) { c.Method = "rlhf" }, `method: "rlhf" is unknown; use full, lora or dpo`},
		{"qlora", func(c *Config) { c.Method = "qlora" }, "qlora needs a GPU backend"},
		{"epochs", func(c *Config) { c.Epochs = 0 }, "epochs: must be at least 1, got 0"},
		{"lr zero", func(c *Config) { c.LearningRate = 0 }, "learning rate: must be above 0 and at most 1, got 0"},
		{"lr big", func(c *Config) { c.LearningRate = 2 }, "learning rate: must be above 0 and at most 1, got 2"},
		{"lr NaN", func(c *Config) { c.LearningRate = math.NaN() }, "learning rate: must be above 0"},
		{"batch", func(c *Config) { c.BatchSize = 513 }, "batch size: must be between 1 and 512, got 513"},
		{"rank", func(c *Config) { c.LoRARank = 0 }, "lora rank: must be between 1 and 256, got 0"},
		{"alpha", func(c *Config) { c.LoRAAlpha = -1 }, "lora alpha: must be above 0, got -1"},
		{"seq len short", func(c *Config) { c.MaxSeqLen = 7 }, "max sequence length: must be between 8 and 4096, got 7"},
		{"seq len long", func(c *Config) { c.MaxSeqLen = 5000 }, "max sequence length: must be between 8 and 4096, got 5000"},
		{"eval share", func(c *Config) { c.EvalFraction = 0.9 }, "validation split: must be between 0 and 0.5, got 0.9"},
		{"beta", func(c *Config) { c.Method, c.DPOBeta = MethodDPO, 0 }, "dpo beta: must be above 0"},
		{"schedule", func(c *Config) { c.Schedule = "step" }, `schedule: "step" is unknown`},
		{"log every", func(c *Config) { c.LogEvery = 0 }, "log every: must be at least 1 step"},
		{"snapshot every", func(c *Config) { c.SnapshotEvery = -1 }, "snapshot every: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// Rank only matters for lora.
	c := DefaultConfig()
	c.Method, c.LoRARank = MethodFull, 0
	if err := c.Validate(); err != nil {
		t.Errorf("full with rank 0: %v", err)
	}
	// Every problem is reported at once.
	c = DefaultConfig()
	c.Epochs, c.BatchSize = 0, 0
	if err := c.Validate(); err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("two problems, got %v", err)
	}
}

func TestLearningRateSchedule(t *testing.T) {
	peak := 1e-2
	if lr := learningRate(peak, 0, 100, 10, "cosine"); math.Abs(lr-1e-3) > 1e-12 {
		t.Errorf("first warm-up step %g", lr)
	}
	if lr := learningRate(peak, 9, 100, 10, "cosine"); lr != peak {
		t.Errorf("end of warm-up %g", lr)
	}
	if lr := learningRate(peak, 55, 100, 10, "cosine"); math.Abs(lr-peak/2) > 1e-12 {
		t.Errorf("cosine midpoint %g", lr)
	}
	if lr := learningRate(peak, 55, 100, 10, "linear"); math.Abs(lr-peak/2) > 1e-12 {
		t.Errorf("linear midpoint %g", lr)
	}
	if lr := learningRate(peak, 100, 100, 10, "cosine"); lr > 1e-12 {
		t.Errorf("end %g", lr)
	}
}
