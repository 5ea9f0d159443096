package billing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v76"

	"tunelab/store"
)

// MeterStore is what the meter-event sender needs from the database.
type MeterStore interface {
	DueMeterEvents(ctx context.Context, now time.Time, limit int) ([]store.MeterEvent, error)
	NextMeterTry(ctx context.Context) (time.Time, error)
	MeterSent(ctx context.Context, runID, seq int64, at time.Time) error
	MeterRetry(ctx context.Context, runID, seq int64, next time.Time, reason string) error
	MeterTooOld(ctx context.Context, runID, seq int64, reason string) error
	MeterOutbox(ctx context.Context) (store.MeterOutboxState, error)
}

// Outbox is the meter-event outbox at a glance, for the admin page; ok is false when
// billing is off.
func (s *Service) Outbox(ctx context.Context) (o store.MeterOutboxState, ok bool, err error) {
	ms, isMS := s.st.(MeterStore)
	if !s.Enabled() || !isMS {
		return o, false, nil
	}
	o, err = ms.MeterOutbox(ctx)
	return o, err == nil, err
}

// Stripe accepts meter events up to 35 days old; rows older than this margin are flagged
// for the operator instead of being sent.
const (
	meterWindow     = 35*24*time.Hour - time.Hour
	meterBatch      = 100
	meterPoll       = 30 * time.Second
	meterBackoffMin = 5 * time.Second
	meterBackoffMax = 30 * time.Minute
)

// backoff is the wait after the n-th failed send (n from 1): 5 s, 10 s, 20 s… up to 30 min.
func backoff(n int) time.Duration {
	d := meterBackoffMin
	for i := 1; i < n && d < meterBackoffMax; i++ {
		d *= 2
	}
	return min(d, meterBackoffMax)
}

// SendDueMeterEvents sends every due outbox row to Stripe as a billing meter event with
// the row's stable identifier, and records each acknowledgement. A failed send stays in
// the outbox with a growing backoff. It returns how many were acknowledged.
func (s *Service) SendDueMeterEvents(ctx context.Context) (int, error) {
	if !s.Enabled() {
		return 0, ErrOff
	}
	ms, ok := s.st.(MeterStore)
	if !ok {
		return 0, errors.New("billing: the store keeps no meter outbox")
	}
	sent := 0
	for {
		now := s.now()
		due, err := ms.DueMeterEvents(ctx, now, meterBatch)
		if err != nil || len(due) == 0 {
			return sent, err
		}
		for _, e := range due {
			ok, err := s.sendMeterEvent(ctx, ms, e, now)
			if err != nil {
				return sent, err // the database failed, or the test's crash: stop here
			}
			if ok {
				sent++
			}
		}
	}
}

// sendMeterEvent sends one row: ok when Stripe acknowledged it and that is recorded; a
// failed send is put back with its backoff (ok false, err nil); err is the database's.
func (s *Service) sendMeterEvent(ctx context.Context, ms MeterStore, e store.MeterEvent, now time.Time) (bool, error) {
	retry := func(reason string) (bool, error) {
		return false, ms.MeterRetry(ctx, e.RunID, e.Seq, now.Add(backoff(e.Attempts+1)), reason)
	}
	if now.Sub(e.At) > meterWindow {
		reason := fmt.Sprintf("usage of %s is older than Stripe's 35-day window: bill %d s by hand", e.At.Format(time.RFC3339), e.Seconds)
		s.log.Warn("meter event too old for Stripe; flagged for the operator", "run", e.RunID, "seq", e.Seq, "seconds", e.Seconds)
		return false, ms.MeterTooOld(ctx, e.RunID, e.Seq, reason)
	}
	event, ok := s.plans.MeterEvent[e.GPUType]
	if !ok {
		return retry(fmt.Sprintf("no stripe_meter_events entry for GPU type %q", e.GPUType))
	}
	if e.CustomerID == "" {
		return retry("the person has no Stripe customer")
	}
	at := min(e.At.Unix(), now.Unix())
	p := &stripe.BillingMeterEventParams{
		EventName:  stripe.String(event),
		Identifier: stripe.String(e.Identifier()),
		Timestamp:  stripe.Int64(at),
		Payload:    map[string]string{"stripe_customer_id": e.CustomerID, "value": strconv.FormatInt(e.Seconds, 10)},
	}
	p.Context = ctx
	p.SetIdempotencyKey("tunelab-meter-" + e.Identifier())
	if _, err := s.sc.BillingMeterEvents.New(p); err != nil {
		s.log.Warn("meter event not sent; kept for a retry", "run", e.RunID, "seq", e.Seq, "attempt", e.Attempts+1, "err", err)
		return retry(err.Error())
	}
	if s.afterSend != nil {
		if err := s.afterSend(e); err != nil {
			return false, err
		}
	}
	return true, ms.MeterSent(ctx, e.RunID, e.Seq, s.now())
}

// WakeMeter tells the meter sender a usage row was written (a run ended).
func (s *Service) WakeMeter() {
	if s == nil || s.wakeMeter == nil {
		return
	}
	select {
	case s.wakeMeter <- struct{}{}:
	default:
	}
}

// RunMeterSender sends the outbox until ctx ends: at start, when woken (WakeMeter, or
// wake when not nil), when a retry is due, and every 30 s.
func (s *Service) RunMeterSender(ctx context.Context, wake <-chan struct{}) {
	if !s.Enabled() {
		return
	}
	ms, _ := s.st.(MeterStore)
	var warned time.Time
	for {
		if _, err := s.SendDueMeterEvents(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("meter sender", "err", err)
		}
		warned = s.WarnMeterBacklog(ctx, warned)
		wait := meterPoll
		if ms != nil {
			if next, err := ms.NextMeterTry(ctx); err == nil && !next.IsZero() {
				wait = min(wait, max(next.Sub(s.now()), time.Second))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-s.wakeMeter:
		case <-t.C:
		}
		t.Stop()
	}
}

// MeterBacklogAlert is how long GPU seconds may wait for Stripe before the operator is
// alerted (an error in the log, an alert on the admin page): usage must
// reach Stripe within its 35-day window and before the period's invoice finalizes.
const MeterBacklogAlert = 6 * time.Hour

// MeterBacklogOver reports whether the oldest usage waiting for Stripe has waited longer
// than MeterBacklogAlert at now.
func MeterBacklogOver(o store.MeterOutboxState, now time.Time) bool {
	return !o.OldestPending.IsZero() && now.Sub(o.OldestPending) > MeterBacklogAlert
}

// WarnMeterBacklog logs an error when usage has waited for Stripe past MeterBacklogAlert,
// at most once an hour (lastWarned is the previous warning's time; it returns the new one).
func (s *Service) WarnMeterBacklog(ctx context.Context, lastWarned time.Time) time.Time {
	ms, ok := s.st.(MeterStore)
	now := s.now()
	if !ok || now.Sub(lastWarned) < time.Hour {
		return lastWarned
	}
	o, err := ms.MeterOutbox(ctx)
	if err != nil || !MeterBacklogOver(o, now) {
		return lastWarned
	}
	s.log.Error("GPU usage has waited for Stripe longer than the alert threshold; it stays in the outbox and is sent when Stripe answers",
		"threshold", MeterBacklogAlert, "oldest_waiting_since", o.OldestPending.UTC().Format(time.RFC3339),
		"rows", o.Pending, "gpu_seconds", o.PendingSeconds, "last_error", o.LastError)
	return now
}

// ReconcileStore is what Reconcile needs beyond MeterStore.
type ReconcileStore interface {
	MeterReconciliation(ctx context.Context, limit int) ([]store.MeterReconRow, error)
}

// Reconcile compares, per person and month, the GPU seconds in the ledger with those
// Stripe acknowledged (the outbox's sent rows: Stripe's meter event summaries are not
// read back); ok is false when billing is off.
func (s *Service) Reconcile(ctx context.Context, limit int) (rows []store.MeterReconRow, ok bool, err error) {
	rs, isRS := s.st.(ReconcileStore)
	if !s.Enabled() || !isRS {
		return nil, false, nil
	}
	rows, err = rs.MeterReconciliation(ctx, limit)
	return rows, err == nil, err
}
