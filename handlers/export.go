package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"tunelab/store"
	"tunelab/views"
)

// Data export (docs/export.md): asked for in Settings after the password (and code), built
// in the background into the vault, mailed as a single-use link valid store.ExportLinkTTL.

// MailExportReady is the mail kind of the "export ready" mail.
const mailExportReady = "data_export_ready"

func (a *app) exportView(r *http.Request, u store.User) (views.ExportPage, error) {
	var e views.ExportPage
	st, err := a.store.TOTPState(r.Context(), u.ID)
	if err != nil {
		return e, err
	}
	e.TwoFactorOn = st.Enabled
	x, ok, err := a.store.LatestExport(r.Context(), u.ID)
	if err != nil {
		return e, err
	}
	e.CanAsk = true
	if !ok {
		return e, nil
	}
	e.Has, e.Progress = true, x.Progress
	switch x.State {
	case store.ExportQueued, store.ExportBuilding:
		e.Building, e.Status, e.Tone = true, "Being built", "accent"
		e.Detail = "You can leave this page: a mail brings the link when it is ready."
	case store.ExportReady:
		e.Status, e.Tone = "Ready", "success"
		if x.DownloadedAt.IsZero() {
			e.Detail = fmt.Sprintf("%s. The link in your mail downloads it once, until %s.", formatBytes(x.SizeBytes), x.ExpiresAt.Format(closedTime))
		} else {
			e.Status = "Downloaded"
			e.Detail = fmt.Sprintf("Downloaded on %s; the file is deleted on %s.", x.DownloadedAt.Format(closedTime), x.ExpiresAt.Format(closedTime))
		}
	case store.ExportFailed:
		e.Status, e.Tone = "Failed", "danger"
		e.Detail = "It could not be built; ask again, and tell the operator if it fails again."
	default:
		e.Status = "Expired"
		e.Detail = "Its 7 days are over and the file is deleted."
	}
	if x.State != store.ExportFailed && a.now().Before(x.NextExportAt()) {
		e.CanAsk, e.NextAt = false, x.NextExportAt().Format(closedTime)
	}
	return e, nil
}

func (a *app) showExport(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	e, err := a.exportView(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, a.page(r, "Export your data", "settings"), views.ExportPageView(e))
}

// exportStatus is the status card alone, for the page's polling.
func (a *app) exportStatus(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	e, err := a.exportView(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.renderWith(w, r, http.StatusOK, a.page(r, "Export your data", "settings"), views.ExportPageView(e), views.ExportStatus(e))
}

func (a *app) requestExport(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	e, err := a.exportView(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	p := a.page(r, "Export your data", "settings")
	show := func(status int) { a.render(w, r, status, p, views.ExportPageView(e)) }
	if !a.reauthenticate(w, r, u, e.TwoFactorOn, &e.PasswordError, &e.CodeError, &e.FormError, show) {
		return
	}
	x, err := a.store.RequestExport(r.Context(), u.ID)
	if errors.Is(err, store.ErrExportTooSoon) {
		e.FormError = "One export a day: the next can be asked for from " + x.NextExportAt().Format(closedTime) + "."
		w.Header().Set("Retry-After", retryAfter(x.NextExportAt().Sub(a.now())))
		show(http.StatusTooManyRequests)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventExportRequested, u.ID, u.Email)
	go a.buildExport(x.ID, u, a.linkBase(r))
	redirect(w, r, "/settings/export")
}

// buildExport builds one export and mails its link; a failure is recorded on the export
// (the page says so) and logged. It runs beyond the request.
func (a *app) buildExport(id int64, u store.User, base string) {
	ctx := context.Background()
	opts := store.ExportOptions{BaseURL: base}
	if a.billing.Enabled() {
		inv, err := a.exportInvoices(ctx, u.ID)
		if err != nil {
			a.log.Error("build data export: invoices", "export", id, "err", err)
			a.store.FailExport(ctx, id, "the invoices could not be read from Stripe")
			return
		}
		opts.Invoices = inv
	}
	fileID, size, err := a.store.BuildExport(ctx, a.vault, id, opts)
	if err == nil {
		var token string
		if token, err = a.store.FinishExport(ctx, id, fileID, size); err == nil {
			x, _ := a.store.ExportByID(ctx, id)
			err = a.mailExportReady(ctx, u, views.MailExportReady{Link: base + "/settings/export/download/" + token,
				Expires: x.ExpiresAt.Format(closedTime), Size: formatBytes(size)})
		}
	}
	if err != nil {
		a.log.Error("build data export", "export", id, "err", err)
		a.store.FailExport(ctx, id, "the export could not be built")
	}
}

func (a *app) mailExportReady(ctx context.Context, u store.User, m views.MailExportReady) error {
	var b bytes.Buffer
	if err := views.ExportReadyMailHTML(m).Render(ctx, &b); err != nil {
		return err
	}
	if _, err := a.store.EnqueueMail(ctx, store.NewMail{Kind: mailExportReady, To: u.Email, Subject: "Your tunelab data export is ready",
		Text: views.ExportReadyMailText(m), HTML: b.String()}); err != nil {
		return err
	}
	if a.mail.Wake != nil {
		a.mail.Wake()
	}
	return nil
}

// resumeExports builds exports a restart cut short (they stay queued or building).
func (a *app) resumeExports() {
	ids, err := a.store.UnfinishedExports(context.Background())
	if err != nil {
		a.log.Error("find unfinished exports", "err", err)
		return
	}
	for _, id := range ids {
		x, err := a.store.ExportByID(context.Background(), id)
		if err != nil {
			continue
		}
		u, err := a.store.UserByID(context.Background(), x.UserID)
		if err != nil {
			continue
		}
		a.buildExport(id, u, a.cfg.BaseURL)
	}
}

// exportByLink finds the export the link in the path leads to, for its owner signed in,
// through look (peek or spend); it answers 404 or 500 itself and returns false then.
func (a *app) exportByLink(w http.ResponseWriter, r *http.Request, look func(context.Context, int64, string) (store.Export, error)) (store.Export, bool) {
	u, _ := userFrom(r.Context())
	token := r.PathValue("token")
	if len(token) != 64 || strings.Trim(token, "0123456789abcdef") != "" {
		a.notFound(w, r)
		return store.Export{}, false
	}
	x, err := look(r.Context(), u.ID, token)
	if errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return x, false
	}
	if err != nil {
		a.serverError(w, r, err)
		return x, false
	}
	return x, true
}

// showExportDownload is where the mailed link leads (GET): a page with the download
// button, spending nothing, so a mail scanner or a link preview cannot use the link up.
// Only its owner, signed in, within 7 days, before the download; else the plain 404 page.
func (a *app) showExportDownload(w http.ResponseWriter, r *http.Request) {
	x, ok := a.exportByLink(w, r, a.store.ExportLink)
	if !ok {
		return
	}
	a.render(w, r, http.StatusOK, a.page(r, "Your data export", "settings"), views.ExportDownloadPage(views.ExportDownload{
		Action: r.URL.Path, Size: formatBytes(x.SizeBytes), Created: x.CreatedAt.Format(closedTime), Expires: x.ExpiresAt.Format(closedTime)}))
}

// downloadExport spends the single-use link (POST from its page): only its owner, signed
// in, within 7 days, once. Anything else is the plain 404 page.
func (a *app) downloadExport(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	x, ok := a.exportByLink(w, r, a.store.UseExportLink)
	if !ok {
		return
	}
	rc, err := a.vault.Open(x.FileID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	defer rc.Close()
	a.recordEvent(r, store.EventExportDownloaded, u.ID, u.Email)
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", `attachment; filename="tunelab-export-`+x.CreatedAt.Format("2006-01-02")+`.zip"`)
	h.Set("Content-Length", strconv.FormatInt(x.SizeBytes, 10))
	h.Set("Cache-Control", "no-store")
	io.Copy(w, rc)
}

// downloadExportSnapshot serves a snapshot an export listed by link (past its size limit):
// to its owner, signed in, while the export's 7 days last; 404 otherwise.
func (a *app) downloadExportSnapshot(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	id, err1 := strconv.ParseInt(r.PathValue("id"), 10, 64)
	sid, err2 := strconv.ParseInt(r.PathValue("sid"), 10, 64)
	if err1 != nil || err2 != nil {
		a.notFound(w, r)
		return
	}
	sn, err := a.store.ExportSnapshot(r.Context(), u.ID, id, sid)
	if errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	f, err := a.vault.Open(sn.FileID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(sn.SizeBytes, 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="run-%d-step-%d.safetensors"`, sn.RunID, sn.Step))
	h.Set("X-Content-SHA256", sn.SHA256)
	h.Set("Cache-Control", "no-store")
	io.Copy(w, f)
}

// exportInvoice is one invoice in invoices.json.
type exportInvoice struct {
	Number    string `json:"number"`
	Created   string `json:"created"`
	Status    string `json:"status"`
	AmountDue int64  `json:"amount_due_minor_units"`
	Currency  string `json:"currency"`
	URL       string `json:"hosted_invoice_url"`
}

// exportInvoices lists the person's invoices from Stripe (the billing page's list); a
// Stripe that does not answer fails the export rather than leaving them out silently.
func (a *app) exportInvoices(ctx context.Context, userID int64) ([]exportInvoice, error) {
	ov, err := a.billing.Overview(ctx, userID)
	if err != nil {
		return nil, err
	}
	if ov.InvoicesFailed {
		return nil, errors.New("stripe did not answer the invoice list")
	}
	out := []exportInvoice{}
	for _, inv := range ov.Invoices {
		out = append(out, exportInvoice{Number: inv.Number, Created: inv.Created.Format("2006-01-02T15:04:05Z"), Status: inv.Status,
			AmountDue: inv.AmountDue, Currency: inv.Currency, URL: inv.URL})
	}
	return out, nil
}
