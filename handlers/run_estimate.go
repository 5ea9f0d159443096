package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"tunelab/store"
	"tunelab/views"
)

// showRunEstimate answers the run form's live estimate for the fields it sends.
func (a *app) showRunEstimate(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	q := r.URL.Query()
	v := views.RunFormValues{DatasetID: strings.TrimSpace(q.Get("dataset_id")), Epochs: strings.TrimSpace(q.Get("epochs")),
		BaseModel: q.Get("base_model"), GPUType: q.Get("gpu_type")}
	e, err := a.runEstimate(r, u.ID, v)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.renderBare(w, r, views.RunEstimateFragment(e))
}

// runEstimate is the expected time and cost of the run the form describes; an empty one
// (not shown) while a dataset or the epochs are missing.
func (a *app) runEstimate(r *http.Request, userID int64, v views.RunFormValues) (views.RunEstimate, error) {
	dsID, err1 := strconv.ParseInt(v.DatasetID, 10, 64)
	epochs, err2 := strconv.Atoi(strings.TrimSpace(v.Epochs))
	if err1 != nil || err2 != nil || epochs < 1 || epochs > 1000 {
		return views.RunEstimate{}, nil
	}
	d, err := a.store.Dataset(r.Context(), userID, dsID)
	if errors.Is(err, store.ErrNotFound) {
		return views.RunEstimate{}, nil
	}
	if err != nil {
		return views.RunEstimate{}, err
	}
	e, err := a.billing.EstimateRun(r.Context(), userID, d.Tokens, epochs, v.BaseModel, v.GPUType)
	if err != nil {
		return views.RunEstimate{}, err
	}
	out := views.RunEstimate{
		Shown:  true,
		Time:   "≈ " + formatGPUSeconds(e.Seconds) + " of " + strings.ToLower(timeLabel(a.runs.Backend.Offer())),
		Tokens: fmt.Sprintf("%s tokens (dataset × %d epochs) at %s tokens/s", formatCount(e.Tokens), epochs, formatCount(e.TokensPerS)),
		Basis:  "a default speed until a run of this model on this hardware finishes",
	}
	if e.LearnedFrom == 1 {
		out.Basis = "speed measured on 1 finished run of this model and hardware"
	} else if e.LearnedFrom > 1 {
		out.Basis = fmt.Sprintf("speed measured on %d finished runs of this model and hardware", e.LearnedFrom)
	}
	switch {
	case !e.Enabled:
		out.CostNote = "Free on this server"
	case e.Plan.Free && e.Billed > 0:
		out.CostNote = fmt.Sprintf("More than the %s of %s time you have left; the run starts, and new runs wait for the next period or a plan", formatGPUSeconds(e.Covered), e.Plan.Name)
	case e.Plan.Free || e.Billed == 0:
		out.CostNote = "Covered by your included time (" + e.Plan.Name + ")"
	default:
		out.Cost = "≈ " + e.Cost.USD()
		out.CostNote = fmt.Sprintf("for %s past your included time, at %s's price", formatGPUSeconds(e.Billed), e.Plan.Name)
	}
	return out, nil
}
