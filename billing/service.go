package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"tunelab/store"
)

// Store is what billing needs from the database.
type Store interface {
	BillingAccount(ctx context.Context, userID int64) (store.BillingAccount, error)
	SetStripeCustomer(ctx context.Context, userID int64, customerID string) (string, error)
	ApplyStripeEvent(ctx context.Context, ev store.StripeEvent, ch store.BillingChange) (bool, error)
	UsageBetween(ctx context.Context, userID int64, from, to time.Time) ([]store.RunUsage, error)
	SetMonthlyCap(ctx context.Context, userID, cents int64) error
}

// SetMonthlyCap sets the person's cap on a period's usage cost (0: none).
func (s *Service) SetMonthlyCap(ctx context.Context, userID, cents int64) error {
	if !s.Enabled() {
		return ErrOff
	}
	return s.st.SetMonthlyCap(ctx, userID, cents)
}

// Config is everything New needs.
type Config struct {
	Store   Store
	Stripe  StripeConfig
	Plans   Plans
	BaseURL string // where people reach tunelab; Checkout and the portal send them back here
	Logger  *slog.Logger
	Now     func() time.Time // nil: time.Now
	// Grace is how long new runs still start after a failed payment (TUNELAB_BILLING_GRACE);
	// 0: DefaultGrace.
	Grace time.Duration
}

// Service is tunelab's billing: plans, usage cost, Checkout, the portal and webhooks.
type Service struct {
	st      Store
	cfg     StripeConfig
	plans   Plans
	sc      *client.API // nil when billing is off
	baseURL string
	log     *slog.Logger
	now     func() time.Time
	grace   time.Duration

	afterSend func(store.MeterEvent) error // tests: runs between Stripe's answer and recording it
	wakeMeter chan struct{}
	notices   notices
}

// New returns the billing service; without a Stripe secret key it is off (Enabled false)
// and every run is free.
func New(c Config) *Service {
	s := &Service{st: c.Store, cfg: c.Stripe, plans: c.Plans, baseURL: c.BaseURL, log: c.Logger, now: c.Now, grace: c.Grace,
		wakeMeter: make(chan struct{}, 1), notices: notices{wake: make(chan struct{}, 1)}}
	if s.grace <= 0 {
		s.grace = DefaultGrace
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if len(s.plans.List) == 0 {
		s.plans = DefaultPlans()
	}
	if c.Stripe.Enabled() {
		c.Stripe.Logger = s.log
		s.sc = newStripeClient(c.Stripe)
	}
	return s
}

// Enabled says whether Stripe is configured.
func (s *Service) Enabled() bool { return s != nil && s.sc != nil }

// Grace is how long new runs still start after a failed payment.
func (s *Service) Grace() time.Duration {
	if s == nil || s.grace <= 0 {
		return DefaultGrace
	}
	return s.grace
}

// Plans is the plan list.
func (s *Service) Plans() Plans { return s.plans }

// Errors the HTTP layer turns into answers.
var (
	ErrOff         = errors.New("billing: billing is off on this server")
	ErrUnknownPlan = errors.New("billing: no such plan")
	ErrNoCustomer  = errors.New("billing: no Stripe customer yet")
	ErrStripe      = errors.New("billing: Stripe did not answer")
	// ErrSubscribed: a second Checkout would start a second subscription; plan changes go
	// through the customer portal.
	ErrSubscribed = errors.New("billing: already subscribed")
)

// subscribed says whether a Stripe status means the plan is in force.
func subscribed(status string) bool {
	return status == "active" || status == "trialing" || status == "past_due" || status == "unpaid"
}

// Line is one run's GPU time in the period and what it costs.
type Line struct {
	Run      store.RunUsage
	Included int64 // seconds covered by the plan's included time
	Billed   int64 // seconds past it
	Cost     Nanodollars
}

// Invoice is one Stripe invoice, linked to its hosted page.
type Invoice struct {
	Number    string
	Created   time.Time
	Status    string // draft, open, paid, uncollectible, void
	AmountDue int64  // minor units
	Currency  string
	URL       string // hosted invoice page
}

// Overview is everything the billing page shows.
type Overview struct {
	Enabled         bool
	Plan            Plan
	Interval        string // monthly or annual; "" on the free plan
	Account         store.BillingAccount
	Subscribed      bool
	PeriodStart     time.Time
	PeriodEnd       time.Time
	Lines           []Line
	UsedSeconds     int64
	IncludedLeft    int64
	Cost            Nanodollars
	Invoices        []Invoice
	InvoicesFailed  bool // Stripe did not answer; the rest of the page still shows
	Plans           []Plan
	PaymentFailedAt time.Time
}

// Period is the billing period containing now: the subscription's current period, or
// the calendar month (UTC) without one.
func Period(a store.BillingAccount, now time.Time) (time.Time, time.Time) {
	if subscribed(a.SubscriptionStatus) && !a.PeriodStart.IsZero() && !now.Before(a.PeriodStart) && now.Before(a.PeriodEnd) {
		return a.PeriodStart, a.PeriodEnd
	}
	now = now.UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, 0)
}

// Charge applies a plan to a period's runs, oldest first: the included seconds cover the
// first ones, the rest is billed at the plan's price for each run's GPU type.
func Charge(pl Plan, runs []store.RunUsage) (lines []Line, used, left int64, total Nanodollars) {
	left = pl.IncludedSeconds
	for _, r := range runs {
		l := Line{Run: r}
		l.Included = min(r.Seconds, left)
		left -= l.Included
		l.Billed = r.Seconds - l.Included
		if !pl.Free {
			l.Cost = Nanodollars(l.Billed) * pl.PerSecond[r.GPUType]
		}
		used += r.Seconds
		total += l.Cost
		lines = append(lines, l)
	}
	return lines, used, left, total
}

// PlanOf is the plan a person is on, and its interval.
func (s *Service) PlanOf(a store.BillingAccount) (Plan, string) {
	if s.Enabled() && subscribed(a.SubscriptionStatus) {
		if pl, iv, ok := s.plans.ByPrice(a.PriceID); ok {
			return pl, iv
		}
	}
	return s.plans.Free(), ""
}

// Overview gathers the billing page of one person.
func (s *Service) Overview(ctx context.Context, userID int64) (Overview, error) {
	a, err := s.st.BillingAccount(ctx, userID)
	if err != nil {
		return Overview{}, err
	}
	o := Overview{Enabled: s.Enabled(), Account: a, Plans: s.plans.List, PaymentFailedAt: a.PaymentFailedAt}
	o.Plan, o.Interval = s.PlanOf(a)
	o.Subscribed = o.Interval != ""
	o.PeriodStart, o.PeriodEnd = Period(a, s.now())
	runs, err := s.st.UsageBetween(ctx, userID, o.PeriodStart, o.PeriodEnd)
	if err != nil {
		return Overview{}, err
	}
	o.Lines, o.UsedSeconds, o.IncludedLeft, o.Cost = Charge(o.Plan, runs)
	if !o.Enabled {
		o.Cost = 0
	}
	if o.Enabled && a.CustomerID != "" {
		o.Invoices, err = s.invoices(ctx, a.CustomerID)
		if err != nil {
			s.log.Warn("list invoices", "user", userID, "err", err)
			o.InvoicesFailed = true
		}
	}
	return o, nil
}

// invoices lists the customer's latest invoices from Stripe.
func (s *Service) invoices(ctx context.Context, customerID string) ([]Invoice, error) {
	p := &stripe.InvoiceListParams{Customer: stripe.String(customerID)}
	p.Limit = stripe.Int64(12)
	p.Context = ctx
	it := s.sc.Invoices.List(p)
	var out []Invoice
	for it.Next() && len(out) < 12 {
		inv := it.Invoice()
		out = append(out, Invoice{
			Number: inv.Number, Created: time.Unix(inv.Created, 0).UTC(), Status: string(inv.Status),
			AmountDue: inv.AmountDue, Currency: string(inv.Currency), URL: inv.HostedInvoiceURL,
		})
	}
	return out, it.Err()
}

// customer returns the person's Stripe customer, creating it the first time. The
// idempotency key makes two concurrent first clicks one customer.
func (s *Service) customer(ctx context.Context, userID int64, email string) (string, error) {
	a, err := s.st.BillingAccount(ctx, userID)
	if err != nil {
		return "", err
	}
	if a.CustomerID != "" {
		return a.CustomerID, nil
	}
	p := &stripe.CustomerParams{Email: stripe.String(email)}
	p.Context = ctx
	p.AddMetadata("tunelab_user_id", strconv.FormatInt(userID, 10))
	p.SetIdempotencyKey("tunelab-customer-" + strconv.FormatInt(userID, 10))
	c, err := s.sc.Customers.New(p)
	if err != nil {
		return "", fmt.Errorf("%w: create customer: %v", ErrStripe, err)
	}
	return s.st.SetStripeCustomer(ctx, userID, c.ID)
}

// Checkout creates a Checkout Session for a paid plan and returns its URL; Stripe collects
// the card there, never tunelab.
func (s *Service) Checkout(ctx context.Context, userID int64, email, planID, interval string) (string, error) {
	if !s.Enabled() {
		return "", ErrOff
	}
	pl, ok := s.plans.ByID(planID)
	if !ok || pl.Free || (interval != "monthly" && interval != "annual") {
		return "", ErrUnknownPlan
	}
	if a, err := s.st.BillingAccount(ctx, userID); err != nil {
		return "", err
	} else if subscribed(a.SubscriptionStatus) {
		return "", ErrSubscribed
	}
	cus, err := s.customer(ctx, userID, email)
	if err != nil {
		return "", err
	}
	price, metered := pl.MonthlyPrice, pl.MonthlyMetered
	if interval == "annual" {
		price, metered = pl.AnnualPrice, pl.AnnualMetered
	}
	items := []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}}
	types := make([]string, 0, len(metered))
	for gt := range metered {
		types = append(types, gt)
	}
	slices.Sort(types)
	for _, gt := range types {
		items = append(items, &stripe.CheckoutSessionLineItemParams{Price: stripe.String(metered[gt])})
	}
	p := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		Customer:          stripe.String(cus),
		ClientReferenceID: stripe.String(strconv.FormatInt(userID, 10)),
		LineItems:         items,
		SuccessURL:        stripe.String(s.baseURL + "/billing?checkout=done&session_id={CHECKOUT_SESSION_ID}"),
		CancelURL:         stripe.String(s.baseURL + "/billing?checkout=cancelled"),
	}
	p.Context = ctx
	cs, err := s.sc.CheckoutSessions.New(p)
	if err != nil {
		return "", fmt.Errorf("%w: checkout session: %v", ErrStripe, err)
	}
	return cs.URL, nil
}

// Portal creates a customer-portal session (card, invoices, cancelling) and returns its
// URL. The URL is a bearer credential: it is never logged.
func (s *Service) Portal(ctx context.Context, userID int64) (string, error) {
	if !s.Enabled() {
		return "", ErrOff
	}
	a, err := s.st.BillingAccount(ctx, userID)
	if err != nil {
		return "", err
	}
	if a.CustomerID == "" {
		return "", ErrNoCustomer
	}
	p := &stripe.BillingPortalSessionParams{Customer: stripe.String(a.CustomerID), ReturnURL: stripe.String(s.baseURL + "/billing")}
	p.Context = ctx
	ps, err := s.sc.BillingPortalSessions.New(p)
	if err != nil {
		return "", fmt.Errorf("%w: portal session: %v", ErrStripe, err)
	}
	return ps.URL, nil
}
