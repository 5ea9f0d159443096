package store

import "testing"

func TestRunStatus(t *testing.T) {
	final := map[RunStatus]bool{RunSucceeded: true, RunFailed: true, RunCancelled: true}
	for _, s := range RunStatuses {
		if s.Final() != final[s] {
			t.Errorf("%q.Final() = %v", s, s.Final())
		}
		if !s.Valid() || s.Label() == "" {
			t.Errorf("%q: valid %v, label %q", s, s.Valid(), s.Label())
		}
	}
	if RunStatus("paused").Valid() || RunStatus("paused").Final() || RunStatus("paused").Label() != "Paused" || RunStatus("").Label() != "" {
		t.Error("an unknown status is neither valid nor final, and is shown capitalised")
	}
	if RunRunning.Label() != "Running" {
		t.Errorf("label of running = %q", RunRunning.Label())
	}
}

func TestMethod(t *testing.T) {
	for _, tc := range []struct {
		m            Method
		label, short string
		lora         bool
		accepts      []DatasetFormat
	}{
		{MethodLoRA, "LoRA", "LoRA", true, []DatasetFormat{FormatChat, FormatCompletion}},
		{MethodQLoRA, "QLoRA", "QLoRA", true, []DatasetFormat{FormatChat, FormatCompletion}},
		{MethodDPO, "DPO", "DPO", false, []DatasetFormat{FormatPreference}},
		{MethodFull, "Full fine-tune", "Full", false, []DatasetFormat{FormatChat, FormatCompletion}},
	} {
		if !tc.m.Valid() || tc.m.Label() != tc.label || tc.m.ShortLabel() != tc.short || tc.m.UsesLoRA() != tc.lora {
			t.Errorf("%q: valid %v, label %q, short %q, lora %v", tc.m, tc.m.Valid(), tc.m.Label(), tc.m.ShortLabel(), tc.m.UsesLoRA())
		}
		for _, f := range DatasetFormats {
			want := false
			for _, a := range tc.accepts {
				want = want || a == f
			}
			if tc.m.Accepts(f) != want {
				t.Errorf("%q.Accepts(%q) = %v", tc.m, f, !want)
			}
		}
	}
	if len(Methods) != 4 || Method("sft").Valid() || Method("sft").Label() != "sft" {
		t.Error("an unknown method is not valid and is shown as it is")
	}
}
