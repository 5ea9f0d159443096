package handlers

import (
	"bytes"
	"net/http"
	"sync"

	"github.com/a-h/templ"

	"tunelab/static"
	"tunelab/store"
	"tunelab/views"
)

// page builds the layout data for a screen.
func (a *app) page(r *http.Request, title, active string) views.Page {
	p := views.Page{Title: title, Active: active, Assets: assets()}
	p.Consent, p.AnalyticsJS = a.consentPage(r)
	if u, ok := userFrom(r.Context()); ok {
		p.User = &views.NavUser{Email: u.Email, Name: u.DisplayName, IsAdmin: u.IsAdmin}
		notice, err := a.billing.Notice(r.Context(), u.ID)
		if err != nil {
			a.log.WarnContext(r.Context(), "billing notice", "err", err)
		}
		p.BillingNotice = notice
		if verified, err := a.store.EmailVerified(r.Context(), u.ID); err != nil {
			a.log.WarnContext(r.Context(), "email verified", "err", err)
		} else if !verified {
			p.VerifyEmail = u.Email
		}
		p.Flash = a.sessions.PopString(r.Context(), flashKey)
	}
	return p
}

func assets() views.Assets {
	return views.Assets{
		CSS:        static.Stylesheets(),
		HTMX:       static.Path("js/htmx.min.js"),
		HTMXSSE:    static.Path("js/ext/hx-sse.min.js"),
		AppJS:      static.Path("js/app.js"),
		Icon:       static.Path("img/favicon.svg"),
		UPlotJS:    static.Path("js/uPlot.iife.min.js"),
		UPlotCSS:   static.Path("css/uPlot.min.css"),
		RunChartJS: static.Path("js/run-chart.js"),
	}
}

// render writes a whole page: the component inside the layout, or the bare component for
// an htmx fragment request.
func (a *app) render(w http.ResponseWriter, r *http.Request, status int, p views.Page, c templ.Component) {
	a.renderWith(w, r, status, p, c, c)
}

// renderWith is render for screens whose htmx fragment differs from the page body, such as
// a form that re-renders itself in place.
func (a *app) renderWith(w http.ResponseWriter, r *http.Request, status int, p views.Page, full, fragment templ.Component) {
	ctx := r.Context()
	buf := renderBuffers.Get().(*bytes.Buffer)
	defer putRenderBuffer(buf)
	var err error
	if wantsFragment(r) {
		err = fragment.Render(ctx, buf)
	} else {
		err = views.Layout(p).Render(templ.WithChildren(ctx, full), buf)
	}
	if err != nil {
		// Nothing has been written yet, so the person gets a clean error page, not half a page.
		buf.Reset()
		a.serverError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Add("Vary", hxRequest)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	buf.WriteTo(w)
}

// renderBuffers recycles page buffers: a long page (a run list of 50 rows is about 80 KB)
// otherwise grows a fresh buffer through several copies on every view.
var renderBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putRenderBuffer(b *bytes.Buffer) {
	if b.Cap() > 1<<20 { // a rare huge page (a run with big charts) is not kept
		return
	}
	b.Reset()
	renderBuffers.Put(b)
}

// redirect sends the browser elsewhere after a successful POST: HX-Redirect for htmx,
// 303 See Other otherwise.
func redirect(w http.ResponseWriter, r *http.Request, url string) {
	if isHTMX(r) {
		w.Header().Set(hxRedirect, url)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, url, http.StatusSeeOther)
}

// serverError logs the cause and shows a generic message; internal error text never
// reaches the person.
func (a *app) serverError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	if store.IsDiskFull(err) {
		w.Header().Set("Retry-After", diskFullRetry)
		a.errorPage(w, r, http.StatusServiceUnavailable, "The server is out of disk space",
			diskFullMessage)
		return
	}
	a.errorPage(w, r, http.StatusInternalServerError, "Something went wrong",
		"We could not finish that request. It has been logged; please try again in a moment.")
}

// A full disk fails closed: the transaction is rolled back whole, the answer is 503 with
// Retry-After, and the same request works again once the operator frees space.
const (
	diskFullRetry   = "300"
	diskFullMessage = "Nothing was saved: the server's disk is full. The operator has been alerted in the server log; try again later."
)

func (a *app) notFound(w http.ResponseWriter, r *http.Request) {
	a.errorPage(w, r, http.StatusNotFound, "Page not found",
		"There is nothing at this address, or it is not yours to see.")
}

func (a *app) badRequest(w http.ResponseWriter, r *http.Request, msg string) {
	a.errorPage(w, r, http.StatusBadRequest, "That request could not be understood", msg)
}

func (a *app) forbidden(w http.ResponseWriter, r *http.Request, msg string) {
	a.errorPage(w, r, http.StatusForbidden, "Not allowed", msg)
}

// errorPage renders an error as a full page, or for htmx as a toast appended to the
// toast region (htmx 4 swaps error responses, so they are re-targeted there).
func (a *app) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	var buf bytes.Buffer
	var err error
	if isHTMX(r) {
		w.Header().Set(hxRetarget, "#toasts")
		w.Header().Set(hxReswap, "beforeend")
		err = views.ToastView(views.Toast{Kind: "error", Message: title + ". " + msg}).Render(r.Context(), &buf)
	} else {
		body := views.ErrorView(views.ErrorPage{Status: status, Title: title, Message: msg})
		err = views.Layout(a.page(r, title, "")).Render(templ.WithChildren(r.Context(), body), &buf)
	}
	h := w.Header()
	h.Add("Vary", hxRequest)
	h.Set("Cache-Control", "no-store")
	if err != nil {
		a.log.ErrorContext(r.Context(), "render error page", "err", err)
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		w.Write([]byte(title + "\n"))
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	buf.WriteTo(w)
}
