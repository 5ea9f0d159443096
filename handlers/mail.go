package handlers

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/a-h/templ"

	"tunelab/store"
	"tunelab/views"
)

// Mail from the HTTP layer: a mail is rendered (plain text and HTML), queued in the store,
// and the sender woken; the sender (main) delivers it over SMTP or into the outbox folder.

// Mail is how the HTTP layer reaches the mail sender.
type Mail struct {
	Wake func() // tells the sender a mail is waiting; nil: it finds it on its next round
	Mode string // how mail leaves, for the admin page: "SMTP (host:port)" or "files in DATA_DIR/outbox"
	// Relay is true when mail leaves through an SMTP server: the privacy policy names it.
	Relay bool
}

// linkBase is the start of links in mails: the configured public URL, never the request's
// Host header (a forged Host must not steer a reset link elsewhere). Only without one
// (tests) is the request's own address used.
func (a *app) linkBase(r *http.Request) string {
	if a.cfg.BaseURL != "" {
		return a.cfg.BaseURL
	}
	return a.baseURL(r)
}

// queueMail renders html and queues an essential mail (no unsubscribe link).
func (a *app) queueMail(r *http.Request, kind, to, subject, text string, html templ.Component) error {
	return a.enqueue(r, store.NewMail{Kind: kind, To: to, Subject: subject, Text: text}, html)
}

// enqueue renders html into m and queues it.
func (a *app) enqueue(r *http.Request, m store.NewMail, html templ.Component) error {
	var b bytes.Buffer
	if err := html.Render(r.Context(), &b); err != nil {
		return fmt.Errorf("render %s mail: %w", m.Kind, err)
	}
	m.HTML = b.String()
	if _, err := a.store.EnqueueMail(r.Context(), m); err != nil {
		return err
	}
	if a.mail.Wake != nil {
		a.mail.Wake()
	}
	return nil
}

// mailPasswordChanged tells the account's address its password changed (ASVS 6.3.7); a
// failure is logged, never shown: the change itself has happened.
func (a *app) mailPasswordChanged(r *http.Request, u store.User, how string) {
	m := views.MailPasswordChanged{Email: u.Email, When: a.now().UTC().Format("2 January 2006 at 15:04 UTC"), How: how,
		ForgotLink: a.linkBase(r) + "/password/forgot"}
	err := a.queueMail(r, store.MailPasswordChanged, u.Email, "Your tunelab password was changed",
		views.PasswordChangedMailText(m), views.PasswordChangedMailHTML(m))
	if err != nil {
		a.log.ErrorContext(r.Context(), "queue password changed mail", "user", u.ID, "err", err)
	}
}

// adminMail is the admin page's outbox section.
func (a *app) adminMail(r *http.Request) (views.AdminMail, error) {
	mails, err := a.store.RecentMail(r.Context(), 50)
	if err != nil {
		return views.AdminMail{}, err
	}
	out := views.AdminMail{Mode: a.mail.Mode}
	if out.Mode == "" {
		out.Mode = "not sent by this process"
	}
	for _, m := range mails {
		row := views.AdminMailRow{Created: m.CreatedAt.Format(adminTime), To: m.To, Subject: m.Subject,
			Attempts: strconv.Itoa(m.Attempts), Status: "Waiting", Tone: "warn", Detail: m.LastError}
		switch {
		case !m.SentAt.IsZero():
			row.Status, row.Tone, row.Detail = "Sent", "success", m.DeliveredTo
		case !m.FailedAt.IsZero():
			row.Status, row.Tone = "Gave up", "danger"
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}

func (a *app) showMailPrefs(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	prefs, err := a.store.GetMailPrefs(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	p := views.MailPrefs{Email: u.Email, RunMails: prefs.RunMails, ProductMails: prefs.ProductMails, Saved: r.URL.Query().Has("saved")}
	a.render(w, r, http.StatusOK, a.page(r, "Email preferences", "settings"), views.MailPrefsPage(p))
}

// saveMailPrefs stores the choices (an unticked box is not sent: off).
func (a *app) saveMailPrefs(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	prefs := store.MailPrefs{RunMails: r.PostFormValue("run_mails") == "on", ProductMails: r.PostFormValue("product_mails") == "on"}
	if err := a.store.SetMailPrefs(r.Context(), u.ID, prefs); err != nil {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, "/settings/email?saved=1")
}

// mailRunEnded mails the owner of a run that succeeded or failed, when they want it; a
// cancelled run was stopped by its owner and gets none. Failures are logged: the run has
// ended either way.
func (a *app) mailRunEnded(r *http.Request, run store.Run) {
	if run.Status != store.RunSucceeded && run.Status != store.RunFailed {
		return
	}
	if err := a.queueRunEnded(r, run); err != nil {
		a.log.ErrorContext(r.Context(), "queue run mail", "run", run.ID, "err", err)
	}
}

func (a *app) queueRunEnded(r *http.Request, run store.Run) error {
	on, err := a.store.RunMails(r.Context(), run.UserID)
	if err != nil || !on {
		return err
	}
	u, err := a.store.UserByID(r.Context(), run.UserID)
	if err != nil {
		return err
	}
	start := run.FirstHeartbeat
	if start.IsZero() {
		start = run.CreatedAt
	}
	base := a.linkBase(r)
	m := views.MailRunEnded{Name: run.Name, Status: string(run.Status), Reason: run.Reason,
		Duration: formatDuration(run.FinishedAt.Sub(start)), RunLink: fmt.Sprintf("%s/runs/%d", base, run.ID),
		PrefsLink: base + "/settings/email", UnsubscribeLink: a.unsubscribeLink(r, u.ID, store.ListRunMails)}
	series, err := a.store.MetricSeries(r.Context(), run.ID)
	if err != nil {
		return err
	}
	for _, s := range series {
		if s.Name == "loss" && s.Last != nil {
			m.FinalLoss = strconv.FormatFloat(*s.Last, 'g', 4, 64)
		}
	}
	return a.queueListMail(r, u, store.ListRunMails, store.MailRunEnded, "Your run "+run.Name+" "+string(run.Status),
		m.UnsubscribeLink, views.RunEndedMailText(m), views.RunEndedMailHTML(m))
}
