package trainer

import (
	"errors"
	"fmt"
	"io"
	"strconv"
)

// snapshotFormat names the tensor layout, so a reader can refuse a file
// from some other model.
const snapshotFormat = "tunelab-charlm-v1"

// snapshotTensors is the whole model, or for lora only the adapters: the
// base is reproducible from its seed, and adapters are what a lora run made.
func (m *Model) snapshotTensors() []Tensor {
	s := m.w.size
	if l := m.lora; l != nil {
		return []Tensor{
			tensor("hidden.lora_A", l.a1, l.rank, s.in()),
			tensor("hidden.lora_B", l.b1, s.Hidden, l.rank),
			tensor("output.lora_A", l.a2, l.rank, s.Hidden),
			tensor("output.lora_B", l.b2, VocabSize, l.rank),
		}
	}
	return []Tensor{
		tensor("embedding.weight", m.w.emb, VocabSize, s.Embed),
		tensor("hidden.weight", m.w.w1, s.Hidden, s.in()),
		tensor("hidden.bias", m.w.b1, s.Hidden),
		tensor("output.weight", m.w.w2, VocabSize, s.Hidden),
		tensor("output.bias", m.w.b2, VocabSize),
	}
}

func tensor(name string, v []float64, shape ...int) Tensor {
	d := make([]float32, len(v))
	for i, x := range v {
		d[i] = float32(x)
	}
	return Tensor{Name: name, Shape: shape, Data: d}
}

func snapshotMetadata(cfg Config, step int, baseGiven bool) map[string]string {
	m := map[string]string{
		"format":     snapshotFormat,
		"method":     string(cfg.Method),
		"vocab":      "bytes+eos",
		"vocab_size": strconv.Itoa(VocabSize),
		"context":    strconv.Itoa(cfg.ContextChars),
		"embed":      strconv.Itoa(cfg.EmbedDim),
		"hidden":     strconv.Itoa(cfg.HiddenDim),
		"seed":       strconv.FormatInt(cfg.Seed, 10),
		"step":       strconv.Itoa(step),
	}
	if cfg.Method == MethodLoRA {
		m["rank"] = strconv.Itoa(cfg.LoRARank)
		m["alpha"] = strconv.FormatFloat(cfg.LoRAAlpha, 'g', -1, 64)
		m["base"] = "seed"
		if baseGiven {
			m["base"] = "given"
		}
	}
	return m
}

// ReadModel loads a snapshot Train wrote. A lora snapshot holds only
// adapters: they are put on base, or when base is nil on the model its
// seed initialises (right when the run started from a fresh model, the
// "base" metadata says so).
func ReadModel(r io.Reader, base *Model) (*Model, error) {
	tensors, meta, err := ReadSafetensors(r)
	if err != nil {
		return nil, err
	}
	if meta["format"] != snapshotFormat {
		return nil, fmt.Errorf("snapshot: format %q is not %s", meta["format"], snapshotFormat)
	}
	var size ModelSize
	var seed int64
	for _, f := range []struct {
		key string
		dst *int
	}{{"context", &size.Context}, {"embed", &size.Embed}, {"hidden", &size.Hidden}} {
		if *f.dst, err = strconv.Atoi(meta[f.key]); err != nil || *f.dst < 1 {
			return nil, fmt.Errorf("snapshot: metadata %q is %q", f.key, meta[f.key])
		}
	}
	if seed, err = strconv.ParseInt(meta["seed"], 10, 64); err != nil {
		return nil, fmt.Errorf("snapshot: metadata seed is %q", meta["seed"])
	}
	byName := map[string][]float32{}
	for _, t := range tensors {
		byName[t.Name] = t.Data
	}
	load := func(name string, dst []float64) error {
		src, ok := byName[name]
		if !ok || len(src) != len(dst) {
			return fmt.Errorf("snapshot: tensor %q missing or of the wrong size", name)
		}
		for i, v := range src {
			dst[i] = float64(v)
		}
		return nil
	}
	if Method(meta["method"]) != MethodLoRA {
		m := &Model{w: newWeights(size)}
		names := []string{"embedding.weight", "hidden.weight", "hidden.bias", "output.weight", "output.bias"}
		for i, t := range m.w.tensors() {
			if err := load(names[i], t); err != nil {
				return nil, err
			}
		}
		return m, nil
	}
	rank, err := strconv.Atoi(meta["rank"])
	if err != nil || rank < 1 {
		return nil, fmt.Errorf("snapshot: metadata rank is %q", meta["rank"])
	}
	alpha, err := strconv.ParseFloat(meta["alpha"], 64)
	if err != nil || !(alpha > 0) {
		return nil, fmt.Errorf("snapshot: metadata alpha is %q", meta["alpha"])
	}
	if base == nil {
		base = NewModel(size, seed)
	}
	if base.Size() != size {
		return nil, errors.New("snapshot: adapters do not fit the base model's sizes")
	}
	m := base.Clone()
	m.lora = &lora{
		rank: rank, alpha: alpha,
		a1: make([]float64, rank*size.in()), b1: make([]float64, size.Hidden*rank),
		a2: make([]float64, rank*size.Hidden), b2: make([]float64, VocabSize*rank),
	}
	names := []string{"hidden.lora_A", "hidden.lora_B", "output.lora_A", "output.lora_B"}
	for i, t := range [][]float64{m.lora.a1, m.lora.b1, m.lora.a2, m.lora.b2} {
		if err := load(names[i], t); err != nil {
			return nil, err
		}
	}
	return m, nil
}
