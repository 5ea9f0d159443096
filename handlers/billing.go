package handlers

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"tunelab/billing"
	"tunelab/views"
)

// showBilling is the person's plan, this period's GPU time and cost, the plans, and the
// invoices Stripe holds.
func (a *app) showBilling(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	o, err := a.billing.Overview(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	interval := "monthly"
	if r.URL.Query().Get("interval") == "annual" || (r.URL.Query().Get("interval") == "" && o.Interval == "annual") {
		interval = "annual"
	}
	if a.billing.Enabled() {
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy(templ.GetNonce(r.Context()))+stripeFormTargets)
	}
	notice := r.URL.Query().Get("checkout")
	if notice != "done" && notice != "cancelled" {
		notice = ""
	}
	a.render(w, r, http.StatusOK, a.page(r, "Billing", "billing"), views.BillingPage(billingView(o, interval, notice, timeLabel(a.runs.Backend.Offer()))))
}

// checkout sends the person to a Stripe Checkout page for the plan they chose.
func (a *app) checkout(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	url, err := a.billing.Checkout(r.Context(), u.ID, u.Email, r.PostFormValue("plan"), r.PostFormValue("interval"))
	switch {
	case errors.Is(err, billing.ErrOff):
		a.errorPage(w, r, http.StatusNotFound, "Billing is off", "This server does not take payments; every run is free.")
	case errors.Is(err, billing.ErrUnknownPlan):
		a.badRequest(w, r, "Choose one of the paid plans on the billing page, monthly or annual.")
	case errors.Is(err, billing.ErrSubscribed):
		a.errorPage(w, r, http.StatusConflict, "You already have a subscription",
			"Change or cancel your plan under Billing → Manage card and invoices, so you are never billed for two plans.")
	case errors.Is(err, billing.ErrStripe):
		a.log.WarnContext(r.Context(), "stripe checkout", "user", u.ID, "err", err)
		a.errorPage(w, r, http.StatusBadGateway, "Stripe did not answer", "Nothing was charged. Try again in a moment.")
	case err != nil:
		a.serverError(w, r, err)
	default:
		a.redirectOut(w, r, url)
	}
}

// portal sends the person to Stripe's customer portal: card, invoices, cancelling.
func (a *app) portal(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	url, err := a.billing.Portal(r.Context(), u.ID)
	switch {
	case errors.Is(err, billing.ErrOff):
		a.errorPage(w, r, http.StatusNotFound, "Billing is off", "This server does not take payments; every run is free.")
	case errors.Is(err, billing.ErrNoCustomer):
		a.badRequest(w, r, "There is no card or invoice yet: choose a plan first.")
	case errors.Is(err, billing.ErrStripe):
		a.log.WarnContext(r.Context(), "stripe portal", "user", u.ID, "err", err)
		a.errorPage(w, r, http.StatusBadGateway, "Stripe did not answer", "Try again in a moment.")
	case err != nil:
		a.serverError(w, r, err)
	default:
		a.redirectOut(w, r, url) // never logged: the URL signs the person in at Stripe
	}
}

// setMonthlyCap saves the person's monthly cap (field monthly_cap_usd; empty: none).
func (a *app) setMonthlyCap(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	v := strings.TrimSpace(r.PostFormValue("monthly_cap_usd"))
	var cents int64
	if v != "" {
		c, ok := parseCents(v)
		if !ok || c < 1 || c > 100_000_000 {
			a.errorPage(w, r, http.StatusUnprocessableEntity, "That cap could not be saved",
				fmt.Sprintf("%q is not an amount from 0.01 to 1000000 US dollars, such as 50 or 120.50. Leave it empty for no cap.", v))
			return
		}
		cents = c
	}
	err := a.billing.SetMonthlyCap(r.Context(), u.ID, cents)
	if errors.Is(err, billing.ErrOff) {
		a.errorPage(w, r, http.StatusNotFound, "Billing is off", "This server does not take payments; every run is free.")
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, "/billing")
}

// redirectOut sends the browser to Stripe: a 303 for a plain form, HX-Redirect for htmx.
func (a *app) redirectOut(w http.ResponseWriter, r *http.Request, url string) {
	w.Header().Set("Cache-Control", "no-store")
	if isHTMX(r) {
		w.Header().Set("HX-Redirect", url)
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Redirect(w, r, url, http.StatusSeeOther)
}

// maxWebhookBytes caps a Stripe event body; Stripe's are a few KiB.
const maxWebhookBytes = 256 << 10

// stripeWebhook takes Stripe's events: the raw body is verified against the
// Stripe-Signature header (no session, no cookie; CSRF protection lets it through
// because it carries neither Origin nor Sec-Fetch-Site).
func (a *app) stripeWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBytes))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusBadRequest)
		return
	}
	err = a.billing.HandleWebhook(r.Context(), body, r.Header.Get("Stripe-Signature"))
	switch {
	case errors.Is(err, billing.ErrOff):
		http.NotFound(w, r)
	case errors.Is(err, billing.ErrBadSignature):
		a.log.WarnContext(r.Context(), "stripe webhook signature failure", "ip", a.clientIP(r), "err", err)
		http.Error(w, "invalid signature", http.StatusBadRequest)
	case err != nil:
		// Stripe retries on 5xx: nothing was recorded, so the retry applies it.
		a.log.ErrorContext(r.Context(), "stripe webhook", "err", err)
		http.Error(w, "could not apply the event", http.StatusInternalServerError)
	default:
		a.billing.WakeNotices() // a failed or paid invoice is mailed now, not at the next sweep
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"received":true}`)
	}
}

// billingView writes the overview in the page's words.
func billingView(o billing.Overview, interval, notice, timeLabel string) views.Billing {
	b := views.Billing{
		Enabled: o.Enabled, TimeLabel: timeLabel, RunColumns: "4", CheckoutDone: notice == "done", CheckoutCancelled: notice == "cancelled", PlanName: o.Plan.Name,
		PeriodText:   formatDay(o.PeriodStart) + " – " + formatDay(o.PeriodEnd.Add(-time.Second)),
		UsedText:     formatGPUSeconds(o.UsedSeconds),
		IncludedText: formatGPUSeconds(o.Plan.IncludedSeconds),
		LeftText:     formatGPUSeconds(max(o.IncludedLeft, 0)),
		CostText:     o.Cost.USD(),
		Interval:     interval, MonthlyHref: "/billing?interval=monthly", AnnualHref: "/billing?interval=annual",
		CanManage:     o.Enabled && o.Account.CustomerID != "",
		CapShown:      o.Enabled && !o.Plan.Free,
		InvoicesError: o.InvoicesFailed,
	}
	if o.Subscribed {
		b.IntervalLabel = map[string]string{"monthly": "Monthly", "annual": "Annual"}[o.Interval]
		b.StatusLabel, b.StatusTone = subscriptionStatus(o.Account.SubscriptionStatus)
		verb := "Renews"
		if o.Account.CancelAtPeriodEnd {
			verb = "Ends"
		}
		b.RenewText = verb + " " + formatDay(o.Account.PeriodEnd)
	}
	if o.Account.MonthlyCapCents > 0 {
		b.CapUSD = fmt.Sprintf("%d.%02d", o.Account.MonthlyCapCents/100, o.Account.MonthlyCapCents%100)
		b.CapText = billing.Nanodollars(o.Account.MonthlyCapCents*10_000_000).USD() + " a period"
	}
	if !o.PaymentFailedAt.IsZero() {
		b.PaymentFailed = formatDay(o.PaymentFailedAt)
	}
	if o.Enabled && !o.Plan.Free {
		b.RateText = rateText(o.Plan) + " past the included time"
	}
	if o.Plan.IncludedSeconds > 0 {
		share := min(o.UsedSeconds*20/o.Plan.IncludedSeconds, 20)
		b.MeterClass = "meter-w-" + strconv.FormatInt(share, 10)
	} else {
		b.MeterClass = "meter-w-20"
	}
	b.MeterOver = o.UsedSeconds > o.Plan.IncludedSeconds
	for _, l := range slices.Backward(o.Lines) {
		name := l.Run.Name
		href := "/runs/" + strconv.FormatInt(l.Run.RunID, 10)
		if l.Run.Deleted || name == "" {
			name, href = fmt.Sprintf("Run %d (deleted)", l.Run.RunID), ""
		}
		if l.Run.Serving {
			name += ": deployments"
		}
		b.Runs = append(b.Runs, views.BillingRun{
			Name: name, Href: href, GPUType: l.Run.GPUType, Ended: formatDay(l.Run.EndedAt),
			Time: formatGPUSeconds(l.Run.Seconds), Included: formatGPUSeconds(l.Included), Billed: formatGPUSeconds(l.Billed),
			Cost: l.Cost.USD(),
		})
	}
	if o.Enabled {
		b.RunColumns = "7" // and the included, billed and cost columns
	}
	for _, p := range o.Plans {
		po := views.PlanOption{ID: p.ID, Name: p.Name, Free: p.Free, Current: p.ID == o.Plan.ID, Switch: o.Subscribed,
			Included: formatGPUSeconds(p.IncludedSeconds) + " of " + lowerFirst(timeLabel) + " a month"}
		switch {
		case p.Free:
			po.Price, po.Rates = "$0", []string{"No card needed"}
		case interval == "annual":
			po.Price, po.Per = "$"+p.AnnualUSD, "/ year"
		default:
			po.Price, po.Per = "$"+p.MonthlyUSD, "/ month"
		}
		if !p.Free {
			po.Rates = []string{"Then " + rateText(p), "Billed per second of actual use"}
		}
		b.Plans = append(b.Plans, po)
	}
	for _, inv := range o.Invoices {
		row := views.InvoiceRow{Number: inv.Number, Date: formatDay(inv.Created), URL: inv.URL,
			Amount: formatMinor(inv.AmountDue, inv.Currency)}
		row.Status, row.StatusTone = invoiceStatus(inv.Status)
		if row.Number == "" {
			row.Number = "Draft"
		}
		b.Invoices = append(b.Invoices, row)
	}
	return b
}

// rateText is a plan's GPU-second prices: "$0.000125 per cpu second".
func rateText(p billing.Plan) string {
	types := make([]string, 0, len(p.PerSecondText))
	for gt := range p.PerSecondText {
		types = append(types, gt)
	}
	slices.Sort(types)
	parts := make([]string, len(types))
	for i, gt := range types {
		parts[i] = "$" + p.PerSecondText[gt] + " per " + gt + " second"
	}
	return strings.Join(parts, ", ")
}

func formatDay(t time.Time) string { return t.UTC().Format("2 Jan 2006") }

// formatMinor writes an amount in a currency's minor units: "$10.00", "12.50 EUR".
func formatMinor(v int64, currency string) string {
	s := fmt.Sprintf("%d.%02d", v/100, v%100)
	if strings.EqualFold(currency, "usd") {
		return "$" + s
	}
	return s + " " + strings.ToUpper(currency)
}

func subscriptionStatus(s string) (string, string) {
	switch s {
	case "active":
		return "Active", "success"
	case "trialing":
		return "Trial", "accent"
	case "past_due":
		return "Past due", "warn"
	case "unpaid":
		return "Unpaid", "danger"
	}
	return s, "neutral"
}

func invoiceStatus(s string) (string, string) {
	switch s {
	case "paid":
		return "Paid", "success"
	case "open":
		return "Due", "warn"
	case "uncollectible":
		return "Uncollectible", "danger"
	case "void":
		return "Void", "neutral"
	}
	return "Draft", "neutral"
}
