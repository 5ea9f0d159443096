package trainer

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

func collect(t *testing.T, m *Model, prompt string, o SampleOptions) (string, []string, string) {
	t.Helper()
	var chunks []string
	reason, err := m.Stream(context.Background(), prompt, o, func(s string) error {
		if s == "" || !utf8.ValidString(s) {
			t.Fatalf("chunk %q is empty or not valid UTF-8", s)
		}
		chunks = append(chunks, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(chunks, ""), chunks, reason
}

func trainedAddition(t *testing.T) (*Model, []Example) {
	t.Helper()
	rows := additionExamples(64, 3)
	cfg := smallConfig(MethodFull)
	res, err := Train(context.Background(), cfg, TrainingData{Examples: rows}, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Model, rows
}

func TestStreamGreedyAndSeededAreRepeatable(t *testing.T) {
	m := NewModel(ModelSize{Context: 6, Embed: 6, Hidden: 24}, 1)
	greedy := SampleOptions{MaxBytes: 40}
	a, _, _ := collect(t, m, "héllo", greedy)
	b, _, _ := collect(t, m, "héllo", greedy)
	if a != b || a != m.Generate("héllo", 40, 0, 9) {
		t.Fatalf("greedy differs: %q %q %q", a, b, m.Generate("héllo", 40, 0, 9))
	}
	hot := SampleOptions{MaxBytes: 40, Temperature: 1.5, Seed: 4}
	c, _, _ := collect(t, m, "héllo", hot)
	d, _, _ := collect(t, m, "héllo", hot)
	hot.Seed = 5
	e, _, _ := collect(t, m, "héllo", hot)
	if c != d {
		t.Fatalf("same seed, different text: %q %q", c, d)
	}
	if c == e {
		t.Fatalf("seeds 4 and 5 sampled the same 40 bytes %q from a random model", c)
	}
}

func TestStreamHonoursMaxBytesTopPAndStop(t *testing.T) {
	m := NewModel(ModelSize{Context: 6, Embed: 6, Hidden: 24}, 1)
	text, _, reason := collect(t, m, "abc", SampleOptions{MaxBytes: 7, Temperature: 2, Seed: 1})
	if len(text) > 7 {
		t.Fatalf("%d bytes over a cap of 7: %q", len(text), text)
	}
	if reason != FinishMaxTokens && reason != FinishEOS {
		t.Fatalf("reason %q", reason)
	}
	// A tiny top-p keeps only the likeliest byte: whatever the temperature, greedy.
	greedy, _, _ := collect(t, m, "abc", SampleOptions{MaxBytes: 30})
	nucleus, _, _ := collect(t, m, "abc", SampleOptions{MaxBytes: 30, Temperature: 5, TopP: 1e-9, Seed: 8})
	if greedy != nucleus {
		t.Fatalf("top-p 1e-9 gave %q, greedy %q", nucleus, greedy)
	}
	wild, _, _ := collect(t, m, "abc", SampleOptions{MaxBytes: 30, Temperature: 5, TopP: 1, Seed: 8})
	if wild == greedy {
		t.Fatalf("temperature 5 sampled the greedy text %q", wild)
	}

	tm, _ := trainedAddition(t)
	full, _, _ := collect(t, tm, "Q: add 2 and 3\nA:", SampleOptions{MaxBytes: 20})
	if len(full) < 2 {
		t.Fatalf("trained model said only %q", full)
	}
	stop := full[1:2]
	cut, chunks, reason := collect(t, tm, "Q: add 2 and 3\nA:", SampleOptions{MaxBytes: 20, Stop: []string{stop}})
	if reason != FinishStop || cut != full[:strings.Index(full, stop)] {
		t.Fatalf("stop %q: got %q (%s) from %q", stop, cut, reason, full)
	}
	for _, c := range chunks {
		if strings.Contains(c, stop) {
			t.Fatalf("chunk %q holds the stop sequence", c)
		}
	}
}

func TestTrainedModelFitsItsDataBetterThanBase(t *testing.T) {
	tm, rows := trainedAddition(t)
	base := NewModel(tm.Size(), smallConfig(MethodFull).Seed)
	for _, r := range rows[:5] {
		trained, untrained := tm.CompletionLoss(r.Prompt, r.Completion), base.CompletionLoss(r.Prompt, r.Completion)
		if !(trained < untrained/2) {
			t.Fatalf("row %q→%q: trained loss %.3f, base %.3f", r.Prompt, r.Completion, trained, untrained)
		}
	}
	out, _, reason := collect(t, tm, rows[0].Prompt, SampleOptions{MaxBytes: 10})
	if reason != FinishEOS || !strings.HasPrefix(out, " ") {
		t.Fatalf("trained greedy output %q (%s) does not look like an answer", out, reason)
	}
}

func TestSafeEndHoldsBackPartialCharactersAndStops(t *testing.T) {
	out := []byte("ab\xc3")
	if got := safeEnd(out, 0, nil); got != 2 {
		t.Fatalf("partial é: %d", got)
	}
	if got := safeEnd([]byte("abc\nU"), 0, []string{"\nUser:"}); got != 3 {
		t.Fatalf("stop prefix: %d", got)
	}
	if got := safeEnd([]byte("é"), 0, nil); got != 2 {
		t.Fatalf("whole é: %d", got)
	}
}
