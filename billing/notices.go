package billing

import (
	"context"
	"sync"
	"time"

	"tunelab/store"
)

// Billing mails (payment failed, runs paused after the grace period, paused lifted) are
// found by a sweep of the accounts, so a suspension that only time brings about is mailed
// too; the store queues each once. Rendering them is the HTTP layer's (SetNoticeSender).

// NoticeEvery is how often RunNotices sweeps when nothing wakes it.
const NoticeEvery = time.Minute

// NoticeStore is what the sweep needs beyond Store.
type NoticeStore interface {
	DueBillingNotices(ctx context.Context, grace time.Duration) ([]store.BillingNotice, error)
}

// NoticeSender queues the mail of one notice (store.QueueBillingNotice).
type NoticeSender func(ctx context.Context, n store.BillingNotice) error

type notices struct {
	mu     sync.Mutex
	send   NoticeSender
	wake   chan struct{}
	sweeps sync.Mutex // one sweep at a time
}

// SetNoticeSender sets who renders and queues billing mails; without one none are sent.
func (s *Service) SetNoticeSender(f NoticeSender) {
	s.notices.mu.Lock()
	defer s.notices.mu.Unlock()
	s.notices.send = f
}

// BaseURL is where people reach tunelab, for links in mails.
func (s *Service) BaseURL() string { return s.baseURL }

// SendNotices queues every billing mail that is due now.
func (s *Service) SendNotices(ctx context.Context) error {
	if !s.Enabled() {
		return nil
	}
	ns, ok := s.st.(NoticeStore)
	s.notices.mu.Lock()
	send := s.notices.send
	s.notices.mu.Unlock()
	if !ok || send == nil {
		return nil
	}
	s.notices.sweeps.Lock()
	defer s.notices.sweeps.Unlock()
	due, err := ns.DueBillingNotices(ctx, s.grace)
	if err != nil {
		return err
	}
	for _, n := range due {
		if err := send(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// WakeNotices asks RunNotices for a sweep now (a webhook changed an account).
func (s *Service) WakeNotices() {
	if s == nil {
		return
	}
	select {
	case s.notices.wake <- struct{}{}:
	default:
	}
}

// RunNotices sweeps for due billing mails every NoticeEvery, and when woken, until ctx
// ends. With billing off it returns at once.
func (s *Service) RunNotices(ctx context.Context) {
	if !s.Enabled() {
		return
	}
	t := time.NewTicker(NoticeEvery)
	defer t.Stop()
	for {
		if err := s.SendNotices(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("billing mails", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.notices.wake:
		}
	}
}
