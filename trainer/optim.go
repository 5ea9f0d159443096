package trainer

import "math"

// Adam's constants; the usual ones, not worth a knob on this model.
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
	clipNorm  = 1.0
)

// learningRate is linear warm-up to peak over warmup steps, then cosine or
// linear decay to zero at the last step; step counts from 0.
func learningRate(peak float64, step, total, warmup int, schedule string) float64 {
	if step < warmup {
		return peak * float64(step+1) / float64(warmup)
	}
	decay := max(total-warmup, 1)
	progress := min(float64(step-warmup)/float64(decay), 1)
	if schedule == "linear" {
		return peak * (1 - progress)
	}
	return peak * 0.5 * (1 + math.Cos(math.Pi*progress))
}

func warmupSteps(cfg Config, total int) int {
	if cfg.WarmupSteps > 0 {
		return min(cfg.WarmupSteps, total)
	}
	return max(1, total/20)
}

// adamStep clips the gradients to a global norm of clipNorm and applies one
// Adam update (t counts from 1). It returns the norm before clipping, which
// is what the grad_norm metric shows.
func adamStep(params []*param, lr float64, t int) float64 {
	sq := 0.0
	for _, p := range params {
		sq += dot(p.grad, p.grad)
	}
	norm := math.Sqrt(sq)
	scale := 1.0
	if norm > clipNorm {
		scale = clipNorm / norm
	}
	c1 := 1 - math.Pow(adamBeta1, float64(t))
	c2 := 1 - math.Pow(adamBeta2, float64(t))
	for _, p := range params {
		for i, g := range p.grad {
			g *= scale
			p.m[i] = adamBeta1*p.m[i] + (1-adamBeta1)*g
			p.v[i] = adamBeta2*p.v[i] + (1-adamBeta2)*g*g
			p.value[i] -= lr * (p.m[i] / c1) / (math.Sqrt(p.v[i]/c2) + adamEps)
		}
	}
	return norm
}
