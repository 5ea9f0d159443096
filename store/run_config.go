package store

import (
	"fmt"
	"math"
)

// RunConfig is a run's settings, stored as JSON in runs.config. The JSON keys are the run
// form's field names and the worker job spec's keys.
type RunConfig struct {
	BaseModel    string  `json:"base_model"`
	Method       Method  `json:"method"` // lora, qlora, dpo or full
	Epochs       int     `json:"epochs"`
	LearningRate float64 `json:"learning_rate"`
	BatchSize    int     `json:"batch_size"`
	LoRARank     int     `json:"lora_rank"`
	LoRAAlpha    float64 `json:"lora_alpha"`
	MaxSeqLen    int     `json:"max_seq_len"`
	Seed         int64   `json:"seed"`
	GPUType      string  `json:"gpu_type"`
	// ValidationSplit is the percentage of rows held out for eval loss when no
	// validation dataset is given.
	ValidationSplit float64 `json:"validation_split"`
	// SnapshotEvery is the number of steps between snapshots; 0 saves only at the end.
	SnapshotEvery int `json:"snapshot_every"`
	// InitSnapshotID is the snapshot a continued run starts from (its weights, same base
	// model and method); 0 starts from the base model.
	InitSnapshotID int64 `json:"init_snapshot_id,omitempty"`
	// BudgetCents stops the run once its GPU time at the person's plan price reaches it
	// (US cents); 0: no cap.
	BudgetCents int64 `json:"budget_cents,omitempty"`
}

// Method is how a run fine-tunes, as stored in the run config's "method".
type Method string

// Run methods.
const (
	MethodLoRA  Method = "lora"
	MethodQLoRA Method = "qlora"
	MethodDPO   Method = "dpo"
	MethodFull  Method = "full"
)

// Methods lists every method.
var Methods = []Method{MethodLoRA, MethodQLoRA, MethodDPO, MethodFull}

// methodLabels are the methods as people write them: the full label and the short one a
// table column has room for.
var methodLabels = map[Method][2]string{
	MethodLoRA:  {"LoRA", "LoRA"},
	MethodQLoRA: {"QLoRA", "QLoRA"},
	MethodDPO:   {"DPO", "DPO"},
	MethodFull:  {"Full fine-tune", "Full"},
}

// Valid says whether the method is one of Methods.
func (m Method) Valid() bool {
	_, ok := methodLabels[m]
	return ok
}

// Label is the method as people write it: "LoRA", "Full fine-tune". An unknown method is
// shown as it is.
func (m Method) Label() string {
	if l, ok := methodLabels[m]; ok {
		return l[0]
	}
	return string(m)
}

// ShortLabel is Label where room is short: "Full" instead of "Full fine-tune".
func (m Method) ShortLabel() string {
	if l, ok := methodLabels[m]; ok {
		return l[1]
	}
	return string(m)
}

// UsesLoRA says whether rank and alpha mean anything for the method.
func (m Method) UsesLoRA() bool { return m == MethodLoRA || m == MethodQLoRA }

// Accepts says whether the method trains on datasets of a format: DPO on preference
// pairs, the others on chat or completion rows.
func (m Method) Accepts(f DatasetFormat) bool {
	if m == MethodDPO {
		return f == FormatPreference
	}
	return f == FormatChat || f == FormatCompletion
}

// UsesLoRA says whether rank and alpha mean anything for the run's method.
func (c RunConfig) UsesLoRA() bool { return c.Method.UsesLoRA() }

// Validate checks the ranges every backend shares and returns messages by field name;
// what a backend offers (models, methods, GPU types) is checked by the gpu package.
func (c RunConfig) Validate() map[string]string {
	bad := map[string]string{}
	if !c.Method.Valid() {
		bad["method"] = fmt.Sprintf("%q is not a method; choose lora, qlora, dpo or full", c.Method)
	}
	if c.BaseModel == "" {
		bad["base_model"] = "Choose a base model."
	}
	if c.GPUType == "" {
		bad["gpu_type"] = "Choose a GPU type."
	}
	if c.BudgetCents < 0 || c.BudgetCents > 100_000_000 {
		bad["budget_usd"] = "Use an amount in US dollars from 0.01 to 1000000, or leave it empty for no cap."
	}
	if c.Epochs < 1 || c.Epochs > 1000 {
		bad["epochs"] = "Use a whole number from 1 to 1000."
	}
	if !(c.LearningRate > 0 && c.LearningRate <= 1) {
		bad["learning_rate"] = "Use a number above 0 and at most 1, such as 0.0002 or 3e-3."
	}
	if c.BatchSize < 1 || c.BatchSize > 512 {
		bad["batch_size"] = "Use a whole number from 1 to 512."
	}
	if c.UsesLoRA() {
		if c.LoRARank < 1 || c.LoRARank > 256 {
			bad["lora_rank"] = "Use a whole number from 1 to 256; 8 or 16 is typical."
		}
		if !(c.LoRAAlpha > 0 && c.LoRAAlpha <= 1024) || math.IsInf(c.LoRAAlpha, 0) {
			bad["lora_alpha"] = "Use a number above 0 and at most 1024; twice the rank is typical."
		}
	}
	if c.MaxSeqLen < 8 || c.MaxSeqLen > 32768 {
		bad["max_seq_len"] = "Use a whole number from 8 to 32768."
	}
	if c.Seed < 0 || c.Seed > math.MaxInt32 {
		bad["seed"] = "Use a whole number from 0 to 2147483647."
	}
	if !(c.ValidationSplit >= 0 && c.ValidationSplit <= 50) {
		bad["validation_split"] = "Use a percentage from 0 to 50."
	}
	if c.SnapshotEvery < 0 || c.SnapshotEvery > 1_000_000 {
		bad["snapshot_every"] = "Use 0 (only at the end) or a number of steps up to 1000000."
	}
	return bad
}
