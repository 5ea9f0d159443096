package trainer

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// checkGradients compares analytic grads with central differences for
// every trainable value, with loss() recomputing the objective.
func checkGradients(t *testing.T, o *objective, loss func() float64) {
	t.Helper()
	loss()
	analytic := make([][]float64, len(o.params))
	for i, p := range o.params {
		analytic[i] = append([]float64(nil), p.grad...)
	}
	const eps = 1e-5
	worst, checked := 0.0, 0
	for pi, p := range o.params {
		for i := range p.value {
			orig := p.value[i]
			p.value[i] = orig + eps
			up := loss()
			p.value[i] = orig - eps
			down := loss()
			p.value[i] = orig
			num, ana := (up-down)/(2*eps), analytic[pi][i]
			rel := math.Abs(num-ana) / math.Max(math.Abs(num)+math.Abs(ana), 1e-4)
			worst = math.Max(worst, rel)
			checked++
			if rel > 1e-3 {
				t.Fatalf("param %d[%d]: analytic %.8g, numerical %.8g (relative error %.2g)", pi, i, ana, num, rel)
			}
		}
	}
	t.Logf("%d values checked, worst relative error %.2g", checked, worst)
}

func tinyCheckConfig(method Method) Config {
	c := smallConfig(method)
	c.ContextChars, c.EmbedDim, c.HiddenDim, c.LoRARank = 3, 2, 4, 2
	return c
}

func TestGradientsFull(t *testing.T) {
	cfg := tinyCheckConfig(MethodFull)
	m := NewModel(cfg.modelSize(), 3)
	o := newObjective(m, cfg)
	batch := []sequence{encode("ab", "cd", 64), encode("héllo", "wörld", 64)}
	checkGradients(t, o, func() float64 {
		st, err := o.sftGradients(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		return st.loss
	})
}

func TestGradientsLoRA(t *testing.T) {
	cfg := tinyCheckConfig(MethodLoRA)
	m := NewModel(cfg.modelSize(), 3)
	rng := rand.New(rand.NewPCG(5, 5))
	m.addLoRA(cfg.LoRARank, cfg.LoRAAlpha, rng)
	// B starts at zero, which would make A's gradient zero; check the
	// general case.
	fill(rng, m.lora.b1, 0.3)
	fill(rng, m.lora.b2, 0.3)
	o := newObjective(m, cfg)
	if len(o.params) != 4 {
		t.Fatalf("lora trains %d tensors, want the 4 adapters", len(o.params))
	}
	batch := []sequence{encode("xy", "zzy", 64), encode("1+1=", "2", 64)}
	checkGradients(t, o, func() float64 {
		st, err := o.sftGradients(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		return st.loss
	})
}

func TestGradientsDPO(t *testing.T) {
	cfg := tinyCheckConfig(MethodDPO)
	cfg.DPOBeta = 0.5
	m := NewModel(cfg.modelSize(), 3)
	o := newObjective(m, cfg)
	pairs := []pairSeq{
		{chosen: encode("q", "yes", 64), rejected: encode("q", "no", 64)},
		{chosen: encode("hi", " there", 64), rejected: encode("hi", "!", 64)},
	}
	// A different reference so the margin z is not zero.
	ref := NewModel(cfg.modelSize(), 4).w
	if err := o.referenceLogProbs(context.Background(), ref, pairs); err != nil {
		t.Fatal(err)
	}
	checkGradients(t, o, func() float64 {
		st, err := o.dpoGradients(context.Background(), pairs)
		if err != nil {
			t.Fatal(err)
		}
		return st.loss
	})
}
