package trainer

import (
	"strings"
	"testing"
)

func TestBaseModels(t *testing.T) {
	want := map[string]ModelSize{
		"tunelab/byte-mlp-small": {Context: 16, Embed: 16, Hidden: 128},
		"tunelab/byte-mlp-base":  {Context: 24, Embed: 24, Hidden: 256},
	}
	if len(BaseModels) != len(want) {
		t.Fatalf("%d base models, want %d", len(BaseModels), len(want))
	}
	for _, m := range BaseModels {
		got, ok := BaseModelByID(m.ID)
		if !ok || got.Size != want[m.ID] {
			t.Errorf("BaseModelByID(%q) = %+v, %v; want size %+v", m.ID, got, ok, want[m.ID])
		}
		// The counts a person reads are the weights the trainer builds.
		n := 0
		for _, tns := range NewModel(m.Size, 1).w.tensors() {
			n += len(tns)
		}
		if m.Size.Parameters() != n {
			t.Errorf("%s: Parameters() = %d, the model has %d", m.ID, m.Size.Parameters(), n)
		}
		for _, s := range []string{groupedCount(n) + " parameters", "random weights", "byte-level", "CPU"} {
			if !strings.Contains(m.About, s) {
				t.Errorf("%s: About %q does not mention %q", m.ID, m.About, s)
			}
		}
		if !strings.Contains(m.Name, roundedCount(n)+" parameters") {
			t.Errorf("%s: Name %q lacks the rounded count", m.ID, m.Name)
		}
		cfg := DefaultConfig()
		cfg.ContextChars, cfg.EmbedDim, cfg.HiddenDim = m.Size.Context, m.Size.Embed, m.Size.Hidden
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: sizes refused by Validate: %v", m.ID, err)
		}
	}
	if d := DefaultConfig(); want["tunelab/byte-mlp-base"] != d.modelSize() {
		t.Error("byte-mlp-base is not DefaultConfig's size")
	}
	if _, ok := BaseModelByID("meta-llama/Llama-3-8B"); ok {
		t.Error("an unknown model was found")
	}
	if got := groupedCount(219929); got != "219,929" {
		t.Errorf("groupedCount = %q", got)
	}
}
