package trainer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
)

// A continued run starts from the weights of an earlier run's snapshot instead of a fresh
// model: the full weights, or for lora the same base (rebuilt from the seed the snapshot
// names) with the snapshot's adapters, which keep training. The job spec's init_snapshot
// says where to download it (docs/worker-api.md).

// InitWeights are the weights a continued run starts from (TrainingData.Init).
type InitWeights struct {
	model     *Model
	baseSeed  int64 // the seed the base weights come from; lora snapshots name it again
	baseGiven bool  // lora: the base was given to the earlier run, not rebuilt from a seed
	Step      int   // the step of the earlier run the snapshot was saved at
}

// LoadInitSnapshot reads a snapshot the built-in trainer wrote and checks that cfg can
// continue from it: the same kind of weights (lora adapters for lora, a whole model for
// full and dpo), the base model's shapes, and for lora the same rank. Every mismatch is
// refused with what the snapshot has and what the run needs.
func LoadInitSnapshot(r io.Reader, cfg Config) (*InitWeights, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("init snapshot: %w", err)
	}
	tensors, meta, err := ReadSafetensors(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("init snapshot: %w", err)
	}
	if meta["format"] != snapshotFormat {
		return nil, fmt.Errorf("init snapshot: format %q is not %s, the built-in trainer's", meta["format"], snapshotFormat)
	}
	lora := Method(meta["method"]) == MethodLoRA
	switch {
	case lora && cfg.Method != MethodLoRA:
		return nil, fmt.Errorf("init snapshot: it holds lora adapters; a %s run needs a whole model", cfg.Method)
	case !lora && cfg.Method == MethodLoRA:
		return nil, fmt.Errorf("init snapshot: it holds a whole model (%s); a lora run continues only from lora adapters", meta["method"])
	}
	want := cfg.modelSize()
	got := ModelSize{}
	for _, f := range []struct {
		key string
		dst *int
	}{{"context", &got.Context}, {"embed", &got.Embed}, {"hidden", &got.Hidden}} {
		*f.dst, _ = strconv.Atoi(meta[f.key])
	}
	if got != want {
		return nil, fmt.Errorf("init snapshot: it was trained on a model with context %d, embedding %d, hidden %d; this run's base model has context %d, embedding %d, hidden %d",
			got.Context, got.Embed, got.Hidden, want.Context, want.Embed, want.Hidden)
	}
	if lora && meta["rank"] != strconv.Itoa(cfg.LoRARank) {
		return nil, fmt.Errorf("init snapshot: its lora adapters have rank %s; this run's lora rank is %d", meta["rank"], cfg.LoRARank)
	}
	if lora && meta["base"] == "given" {
		return nil, errors.New("init snapshot: its adapters sit on a base model that was given to that run, not rebuilt from a seed; continue from a whole-model snapshot instead")
	}
	// Every tensor this run trains must be there with its exact shape.
	shape := NewModel(want, 0)
	if lora {
		shape.addLoRA(cfg.LoRARank, 1, rand.New(rand.NewPCG(0, 0)))
	}
	have := map[string][]int{}
	for _, t := range tensors {
		have[t.Name] = t.Shape
	}
	for _, t := range shape.snapshotTensors() {
		s, ok := have[t.Name]
		if !ok {
			return nil, fmt.Errorf("init snapshot: tensor %q is missing", t.Name)
		}
		if !slices.Equal(s, t.Shape) {
			return nil, fmt.Errorf("init snapshot: tensor %q has shape %v; this run needs %v", t.Name, s, t.Shape)
		}
	}
	m, err := ReadModel(bytes.NewReader(raw), nil)
	if err != nil {
		return nil, fmt.Errorf("init %w", err)
	}
	iw := &InitWeights{model: m, baseGiven: meta["base"] == "given"}
	iw.baseSeed, _ = strconv.ParseInt(meta["seed"], 10, 64)
	iw.Step, _ = strconv.Atoi(meta["step"])
	return iw, nil
}

// start returns the model a continued run trains: a copy of the loaded weights, its
// adapters scaled by this run's alpha.
func (iw *InitWeights) start(cfg Config) (*Model, error) {
	if iw.model.Size() != cfg.modelSize() {
		return nil, errors.New("init snapshot: its shapes do not fit this run's base model")
	}
	m := iw.model.Clone()
	if m.lora != nil {
		if cfg.Method != MethodLoRA || m.lora.rank != cfg.LoRARank {
			return nil, errors.New("init snapshot: its lora adapters do not fit this run's method and rank")
		}
		m.lora.alpha = cfg.LoRAAlpha
	} else if cfg.Method == MethodLoRA {
		return nil, errors.New("init snapshot: a lora run continues only from lora adapters")
	}
	return m, nil
}

// loadInit downloads the snapshot the job starts from, when it names one, checks its
// digest and shapes, and puts it in data.Init.
func (w *worker) loadInit(ctx context.Context, data *TrainingData) error {
	ref := w.spec.InitSnapshot
	if ref == nil {
		return nil
	}
	const what = "download the init snapshot"
	u := w.c.base + "/init-snapshot"
	if ref.URL != "" {
		var err error
		if u, err = w.c.resolve(ref.URL); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	var init *InitWeights
	err := w.c.do(ctx, call{what: what, method: http.MethodGet, url: u, read: func(body io.Reader) error {
		h := sha256.New()
		limit := w.spec.MaxSnapshotBytes
		if limit <= 0 {
			limit = 1 << 40
		}
		raw, err := io.ReadAll(io.TeeReader(io.LimitReader(body, limit+1), h))
		if err != nil {
			return err
		}
		if int64(len(raw)) > limit {
			return fmt.Errorf("init snapshot: larger than the job's max_snapshot_bytes (%d)", limit)
		}
		if sum := hex.EncodeToString(h.Sum(nil)); ref.SHA256 != "" && sum != ref.SHA256 {
			return fmt.Errorf("init snapshot: its sha256 %s is not the %s the job names", sum[:12], ref.SHA256[:min(12, len(ref.SHA256))])
		}
		init, err = LoadInitSnapshot(bytes.NewReader(raw), w.cfg)
		return err
	}})
	if err != nil {
		return err
	}
	data.Init = init
	w.say("starting from the weights of run %d's snapshot at step %d", ref.RunID, ref.Step)
	return nil
}
