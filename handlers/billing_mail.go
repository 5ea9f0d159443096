package handlers

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/a-h/templ"

	"tunelab/billing"
	"tunelab/store"
	"tunelab/views"
)

// Billing mails: the billing sweep finds them (billing/notices.go), this renders and
// queues them. Transactional: no preference turns them off.

// mailLinkBase is the start of links in mails sent outside any request.
func (a *app) mailLinkBase() string {
	if a.cfg.BaseURL != "" {
		return a.cfg.BaseURL
	}
	return a.billing.BaseURL()
}

// sendBillingNotice renders one billing notice and queues it (once: the store marks it).
func (a *app) sendBillingNotice(ctx context.Context, n store.BillingNotice) error {
	base := a.mailLinkBase()
	m := views.MailBilling{BillingLink: base + "/billing", NewRunLink: base + "/runs/new", Grace: billing.GraceWords(a.billing.Grace())}
	if !n.PaymentFailedAt.IsZero() {
		m.FailedOn = n.PaymentFailedAt.UTC().Format("2 January 2006")
		m.GraceEnd = n.PaymentFailedAt.Add(a.billing.Grace()).UTC().Format("2 January 2006 at 15:04 UTC")
	}
	var subject, text string
	var html templ.Component
	switch n.Kind {
	case store.NoticePaymentFailed:
		subject, text, html = "Your tunelab payment failed", views.PaymentFailedMailText(m), views.PaymentFailedMailHTML(m)
	case store.NoticeSuspended:
		subject, text, html = "Your tunelab runs are paused", views.SuspendedMailText(m), views.SuspendedMailHTML(m)
	case store.NoticeLifted:
		subject, text, html = "Your tunelab runs can start again", views.LiftedMailText(m), views.LiftedMailHTML(m)
	default:
		return fmt.Errorf("unknown billing notice %q", n.Kind)
	}
	var b bytes.Buffer
	if err := html.Render(ctx, &b); err != nil {
		return fmt.Errorf("render %s mail: %w", n.Kind, err)
	}
	queued, err := a.store.QueueBillingNotice(ctx, n, store.NewMail{Kind: n.Kind, To: n.Email, Subject: subject, Text: text, HTML: b.String()})
	if err != nil {
		return err
	}
	if queued {
		a.log.InfoContext(ctx, "billing mail queued", "user", n.UserID, "kind", n.Kind)
		if a.mail.Wake != nil {
			a.mail.Wake()
		}
	}
	return nil
}

// mailRunStopped tells a run's owner billing is stopping it, and why. A failure is
// logged: the stop goes on either way.
func (a *app) mailRunStopped(r *http.Request, runID int64, reason string) {
	run, err := a.store.RunByID(r.Context(), runID)
	if err == nil {
		var u store.User
		if u, err = a.store.UserByID(r.Context(), run.UserID); err == nil {
			m := views.MailRunStopped{Name: run.Name, Reason: reason, RunLink: fmt.Sprintf("%s/runs/%d", a.linkBase(r), run.ID)}
			err = a.queueMail(r, store.MailRunStopped, u.Email, "Your run "+run.Name+" is being stopped",
				views.RunStoppedMailText(m), views.RunStoppedMailHTML(m))
		}
	}
	if err != nil {
		a.log.ErrorContext(r.Context(), "queue run stopped mail", "run", runID, "err", err)
	}
}
