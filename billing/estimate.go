package billing

import (
	"context"
	"time"
)

// DefaultTokensPerSecond is the training throughput assumed for a base model on a GPU type
// before any run of them has finished; after that, the measured one is used.
const DefaultTokensPerSecond = 1000

// EstimateStore is what the estimate needs beyond Store.
type EstimateStore interface {
	Throughput(ctx context.Context, model, gpuType string) (tokens, seconds int64, runs int, err error)
}

// Estimate is what a run is expected to take and cost before it starts.
type Estimate struct {
	Tokens      int64 // dataset tokens x epochs
	Seconds     int64 // GPU seconds at the throughput
	TokensPerS  int64
	LearnedFrom int // finished runs the throughput comes from; 0: the default
	Enabled     bool
	Plan        Plan
	Covered     int64       // seconds the included time left covers
	Billed      int64       // seconds past it
	Cost        Nanodollars // Billed at the plan's price for the GPU type
}

// EstimateRun estimates a run of datasetTokens x epochs on a model and GPU type for the
// person: duration from measured throughput, cost from their plan and the included time
// they have left this period.
func (s *Service) EstimateRun(ctx context.Context, userID, datasetTokens int64, epochs int, model, gpuType string) (Estimate, error) {
	e := Estimate{Tokens: datasetTokens * int64(max(epochs, 0)), TokensPerS: DefaultTokensPerSecond, Enabled: s.Enabled()}
	if es, ok := s.st.(EstimateStore); ok {
		tok, secs, runs, err := es.Throughput(ctx, model, gpuType)
		if err != nil {
			return e, err
		}
		if runs > 0 && secs > 0 {
			e.TokensPerS, e.LearnedFrom = max(tok/secs, 1), runs
		}
	}
	e.Seconds = (e.Tokens + e.TokensPerS - 1) / e.TokensPerS
	a, err := s.st.BillingAccount(ctx, userID)
	if err != nil {
		return e, err
	}
	e.Plan, _ = s.PlanOf(a)
	start, end := Period(a, s.now())
	runs, err := s.st.UsageBetween(ctx, userID, start, end)
	if err != nil {
		return e, err
	}
	_, _, left, _ := Charge(e.Plan, runs)
	e.Covered = min(e.Seconds, max(left, 0))
	e.Billed = e.Seconds - e.Covered
	if e.Enabled && !e.Plan.Free {
		e.Cost = Nanodollars(e.Billed) * e.Plan.PerSecond[gpuType]
	}
	return e, nil
}

// Duration is the estimate as a duration.
func (e Estimate) Duration() time.Duration { return time.Duration(e.Seconds) * time.Second }
