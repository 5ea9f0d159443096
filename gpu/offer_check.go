package gpu

import (
	"fmt"
	"slices"
	"strings"

	"tunelab/store"
)

// CheckRun returns, by form field, what in cfg this backend cannot run; the ranges every
// backend shares are checked by store.RunConfig.Validate.
func (o Offer) CheckRun(backend string, cfg store.RunConfig) map[string]string {
	bad := map[string]string{}
	if cfg.BaseModel != "" && !slices.ContainsFunc(o.Models, func(m Model) bool { return m.ID == cfg.BaseModel }) {
		bad["base_model"] = fmt.Sprintf("The %s backend does not offer %q; choose one of %s.", backend, cfg.BaseModel, o.modelList())
	}
	if cfg.Method != "" && !slices.Contains(o.Methods, cfg.Method) {
		bad["method"] = fmt.Sprintf("The %s backend does not offer %s; choose %s.", backend, cfg.Method, orList(o.Methods))
	}
	if cfg.GPUType != "" && !slices.ContainsFunc(o.GPUTypes, func(g GPUType) bool { return g.ID == cfg.GPUType }) {
		ids := make([]string, len(o.GPUTypes))
		for i, g := range o.GPUTypes {
			ids[i] = g.ID
		}
		bad["gpu_type"] = fmt.Sprintf("The %s backend has no GPU type %q; choose %s.", backend, cfg.GPUType, orList(ids))
	}
	return bad
}

func (o Offer) modelList() string {
	ids := make([]string, len(o.Models))
	for i, m := range o.Models {
		ids[i] = m.ID
	}
	return orList(ids)
}

// orList joins choices as "a, b or c".
func orList[S ~string](items []S) string {
	switch len(items) {
	case 0:
		return "nothing (the backend offers none)"
	case 1:
		return string(items[0])
	}
	var b strings.Builder
	for i, it := range items[:len(items)-1] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(it))
	}
	return b.String() + " or " + string(items[len(items)-1])
}
