package handlers

import (
	"fmt"
	"net/http"
	"strings"

	"tunelab/views"
)

// adminReconciliation is the admin page's comparison of the ledger with what Stripe
// acknowledged; nil when billing is off.
func (a *app) adminReconciliation(r *http.Request) (*views.MeterReconciliation, error) {
	rows, ok, err := a.billing.Reconcile(r.Context(), 100)
	if err != nil || !ok {
		return nil, err
	}
	out := &views.MeterReconciliation{}
	for _, m := range rows {
		line := views.MeterReconLine{Month: m.Month, Email: m.Email, Customer: m.CustomerID,
			Ledger: formatGPUSeconds(m.Ledger), Sent: formatGPUSeconds(m.Sent), Status: "Matches", Tone: "success"}
		if line.Email == "" {
			line.Email = "account deleted"
		}
		if line.Customer == "" {
			line.Customer = "—"
		}
		if m.Flagged() {
			out.Flagged++
			line.Tone = "warn"
			line.Status = formatGPUSeconds(max(m.Difference(), 0)) + " not acknowledged"
			var why []string
			if m.Pending > 0 {
				why = append(why, formatGPUSeconds(m.Pending)+" waiting to send")
			}
			if m.TooOld > 0 {
				why = append(why, formatGPUSeconds(m.TooOld)+" too old for Stripe: bill by hand")
			}
			if m.Missing > 0 {
				why = append(why, formatGPUSeconds(m.Missing)+" in the ledger but not in the outbox")
			}
			if m.Mismatched > 0 {
				why = append(why, fmt.Sprintf("%d outbox rows differ from their ledger rows", m.Mismatched))
				if m.Difference() == 0 {
					line.Status = "Rows differ"
				}
			}
			line.Detail = strings.Join(why, "; ")
		}
		out.Rows = append(out.Rows, line)
	}
	return out, nil
}
