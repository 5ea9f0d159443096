package gpu

import (
	"fmt"
	"slices"
	"strings"

	"tunelab/store"
)

// Catalogue is what the web app needs of the run machinery to build the run form: a
// name and what can be run. One Backend is a Catalogue; so is a Pool of several.
type Catalogue interface {
	Name() string
	Offer() Offer
}

// Pool is several backends at once. The run form offers the union of their offers; a run
// goes to a backend that offers its GPU type (and its model and method).
type Pool struct {
	backends []Backend
}

// NewPool keeps the backends in the order given (the order routing prefers them in).
func NewPool(backends ...Backend) *Pool {
	return &Pool{backends: slices.Clone(backends)}
}

// Backends lists the pool's backends in order.
func (p *Pool) Backends() []Backend { return slices.Clone(p.backends) }

// Name is the backends' names: "local", or "local, slurm and http".
func (p *Pool) Name() string {
	names := make([]string, len(p.backends))
	for i, b := range p.backends {
		names[i] = b.Name()
	}
	return andList(names)
}

// andList joins names as "a, b and c".
func andList(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// Offer is the union of the backends' offers: every model, method and GPU type any of
// them offers (the first backend's entry wins a shared id), their slots summed, and the
// first backend's defaults.
func (p *Pool) Offer() Offer {
	var o Offer
	for i, b := range p.backends {
		bo := b.Offer()
		if i == 0 {
			o.Defaults = bo.Defaults
		}
		o.Slots += bo.Slots
		for _, m := range bo.Models {
			if !slices.ContainsFunc(o.Models, func(x Model) bool { return x.ID == m.ID }) {
				o.Models = append(o.Models, m)
			}
		}
		for _, m := range bo.Methods {
			if !slices.Contains(o.Methods, m) {
				o.Methods = append(o.Methods, m)
			}
		}
		for _, g := range bo.GPUTypes {
			if !slices.ContainsFunc(o.GPUTypes, func(x GPUType) bool { return x.ID == g.ID }) {
				o.GPUTypes = append(o.GPUTypes, g)
			}
		}
	}
	return o
}

// Route names the first backend that can run cfg. When none can, problem says why, in
// words for the run form's GPU type field.
func (p *Pool) Route(cfg store.RunConfig) (backend, problem string) {
	for _, b := range p.backends {
		if fits(b.Offer(), cfg) {
			return b.Name(), ""
		}
	}
	var gpus []string
	for _, b := range p.backends {
		if slices.ContainsFunc(b.Offer().GPUTypes, func(g GPUType) bool { return g.ID == cfg.GPUType }) {
			gpus = append(gpus, b.Name())
		}
	}
	if len(gpus) == 0 {
		return "", fmt.Sprintf("No backend offers the GPU type %q; choose one the form lists.", cfg.GPUType)
	}
	return "", fmt.Sprintf("%s runs on the %s backend, which does not offer %s with %s; choose another GPU type, model or method.",
		cfg.GPUType, andList(gpus), cfg.BaseModel, cfg.Method.Label())
}

// fits says whether a backend offering o can run cfg: it must offer the run's GPU type,
// and its model and method when it lists any.
func fits(o Offer, cfg store.RunConfig) bool {
	if !slices.ContainsFunc(o.GPUTypes, func(g GPUType) bool { return g.ID == cfg.GPUType }) {
		return false
	}
	if len(o.Models) > 0 && !slices.ContainsFunc(o.Models, func(m Model) bool { return m.ID == cfg.BaseModel }) {
		return false
	}
	return len(o.Methods) == 0 || slices.Contains(o.Methods, cfg.Method)
}

// RouteName is the backend a new run is recorded on while it waits: the pool's route,
// or the one backend's name. The dispatcher may still start it on another backend that
// offers the same GPU type.
func RouteName(c Catalogue, cfg store.RunConfig) string {
	if p, ok := c.(*Pool); ok {
		if name, _ := p.Route(cfg); name != "" {
			return name
		}
		return p.backends[0].Name()
	}
	return c.Name()
}

// RouteProblem says why no backend of c can run cfg, or "".
func RouteProblem(c Catalogue, cfg store.RunConfig) string {
	if p, ok := c.(*Pool); ok && len(p.backends) > 1 {
		_, problem := p.Route(cfg)
		return problem
	}
	return ""
}

var _ Catalogue = (*Pool)(nil)

// BackendNames lists the backends behind a catalogue, in routing order.
func BackendNames(c Catalogue) []string {
	if p, ok := c.(*Pool); ok {
		names := make([]string, len(p.backends))
		for i, b := range p.backends {
			names[i] = b.Name()
		}
		return names
	}
	return []string{c.Name()}
}
