package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"

	"tunelab/store"
	"tunelab/views"
)

// What a provider's sign-in does to accounts: a linked provider account signs its
// account in; an unknown one creates an account (after the terms are accepted) or, when
// the provider says its email is verified and an account has that email, links to that
// account once the person confirms with the account's password. Nothing is ever linked by
// email alone.

// The provider account waiting for the confirm page, in the (server-side) app session.
const (
	oauthPendingProvider = "oauth_pending_provider"
	oauthPendingSubject  = "oauth_pending_subject"
	oauthPendingEmail    = "oauth_pending_email"
	oauthPendingVerified = "oauth_pending_verified"
	oauthPendingName     = "oauth_pending_name"
	oauthPendingNext     = "oauth_pending_next"
	oauthPendingAt       = "oauth_pending_at"
	// pending2FAVia names the provider of a sign-in waiting for its two-factor code.
	pending2FAVia = "pending_2fa_via"
	// settingsNoticeKey / settingsErrorKey hold a one-off line for the Settings page.
	settingsNoticeKey = "settings_notice"
	settingsErrorKey  = "settings_error"
)

var oauthPendingKeys = []string{oauthPendingProvider, oauthPendingSubject, oauthPendingEmail, oauthPendingVerified,
	oauthPendingName, oauthPendingNext, oauthPendingAt}

// oauthButtons are the sign-in page's provider buttons (none when none is configured).
func (a *app) oauthButtons(next string) []views.OAuthButton {
	var out []views.OAuthButton
	for _, name := range a.oauth.order {
		c := a.oauth.providers[name]
		href := "/signin/oauth/" + name
		if next != "" {
			href += "?next=" + url.QueryEscape(next)
		}
		out = append(out, views.OAuthButton{Label: "Continue with " + c.label, Href: href, Icon: name, TestID: "oauth-" + name})
	}
	return out
}

// oauthProblem answers a callback that did not sign anyone in.
func (a *app) oauthProblem(w http.ResponseWriter, r *http.Request, c *oauthClient, intent, message string) {
	v := views.OAuthProblem{Provider: c.label, Message: message, BackHref: "/signin", BackLabel: "Back to sign in"}
	if intent == intentLink {
		v.BackHref, v.BackLabel = "/settings#sign-in-methods", "Back to Settings"
	}
	a.render(w, r, http.StatusBadRequest, a.page(r, "Sign in with "+c.label, "signin"), views.OAuthProblemPage(v))
}

// finishLink links the provider account to the signed-in person who started the flow.
func (a *app) finishLink(w http.ResponseWriter, r *http.Request, c *oauthClient, flow startedFlow, prof oauthProfile) {
	u, ok := userFrom(r.Context())
	if !ok || u.ID != flow.userID {
		a.recordEvent(r, store.EventOAuthFailed, flow.userID, "")
		a.oauthProblem(w, r, c, intentSignIn, "The link was started by another session. Sign in and start it again from Settings.")
		return
	}
	err := a.store.LinkIdentity(r.Context(), u.ID, c.name, prof.Subject, prof.Email)
	switch {
	case errors.Is(err, store.ErrIdentityTaken):
		a.sessions.Put(r.Context(), settingsErrorKey, "That "+c.label+" account is already linked to another tunelab account.")
	case errors.Is(err, store.ErrProviderLinked):
		a.sessions.Put(r.Context(), settingsErrorKey, "Your account is already linked to a "+c.label+" account. Unlink it first to link another.")
	case err != nil:
		a.serverError(w, r, err)
		return
	default:
		a.recordEvent(r, store.EventOAuthLinked, u.ID, u.Email)
		a.sessions.Put(r.Context(), settingsNoticeKey, c.label+" is linked: you can sign in with it now.")
	}
	redirect(w, r, "/settings#sign-in-methods")
}

// finishOAuthSignIn signs in the linked account, or keeps the provider account for the
// confirm page.
func (a *app) finishOAuthSignIn(w http.ResponseWriter, r *http.Request, c *oauthClient, prof oauthProfile, next string) {
	u, err := a.store.UserByIdentity(r.Context(), c.name, prof.Subject)
	if err == nil {
		if a.refuseSuspended(r, u, func(msg string) { a.oauthProblem(w, r, c, intentSignIn, msg) }) {
			return
		}
		a.completeSignIn(w, r, u, c.name, next)
		return
	}
	if !errors.Is(err, store.ErrNotFound) {
		a.serverError(w, r, err)
		return
	}
	if err := a.sessions.RenewToken(r.Context()); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.sessions.Put(r.Context(), oauthPendingProvider, c.name)
	a.sessions.Put(r.Context(), oauthPendingSubject, prof.Subject)
	a.sessions.Put(r.Context(), oauthPendingEmail, prof.Email)
	a.sessions.Put(r.Context(), oauthPendingVerified, prof.EmailVerified)
	a.sessions.Put(r.Context(), oauthPendingName, prof.Name)
	a.sessions.Put(r.Context(), oauthPendingNext, next)
	a.sessions.Put(r.Context(), oauthPendingAt, a.now().UnixMilli())
	redirect(w, r, "/signin/oauth/confirm")
}

// completeSignIn signs u in, or asks for the two-factor code first when it is on. via is
// the provider, "" for a password.
func (a *app) completeSignIn(w http.ResponseWriter, r *http.Request, u store.User, via, next string) {
	tf, err := a.store.TOTPState(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if tf.Enabled {
		a.sessions.Put(r.Context(), pending2FAVia, via)
		a.beginSecondStep(w, r, u, next)
		return
	}
	if a.closedGate(w, r, u) {
		return
	}
	if err := a.startSession(r, u); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.recordSignIn(r, u, via)
	redirect(w, r, safeNext(next))
}

// recordSignIn records a finished sign-in and mails the account when the device is new.
func (a *app) recordSignIn(r *http.Request, u store.User, via string) {
	if via != "" {
		a.recordEvent(r, store.EventOAuthSignIn, u.ID, u.Email)
	} else {
		a.recordEvent(r, store.EventSignIn, u.ID, u.Email)
	}
	a.noteDevice(r, u, true)
}

// pendingOAuth is the provider account waiting on the confirm page.
type pendingOAuth struct {
	provider, subject, email, name, next string
	verified                             bool
}

// oauthPending returns the waiting provider account; ok is false when there is none or
// it waited longer than oauthStateTTL (then it is cleared).
func (a *app) oauthPending(r *http.Request) (pendingOAuth, bool) {
	ctx := r.Context()
	p := pendingOAuth{provider: a.sessions.GetString(ctx, oauthPendingProvider), subject: a.sessions.GetString(ctx, oauthPendingSubject),
		email: a.sessions.GetString(ctx, oauthPendingEmail), name: a.sessions.GetString(ctx, oauthPendingName),
		next: a.sessions.GetString(ctx, oauthPendingNext), verified: a.sessions.GetBool(ctx, oauthPendingVerified)}
	at := time.UnixMilli(a.sessions.GetInt64(ctx, oauthPendingAt))
	if p.subject == "" || a.oauth.providers[p.provider] == nil {
		return pendingOAuth{}, false
	}
	if age := a.now().Sub(at); age < 0 || age > oauthStateTTL {
		a.clearOAuthPending(r)
		return pendingOAuth{}, false
	}
	return p, true
}

func (a *app) clearOAuthPending(r *http.Request) {
	for _, k := range oauthPendingKeys {
		a.sessions.Remove(r.Context(), k)
	}
}

// confirmView decides what the confirm page offers for the waiting provider account.
func (a *app) confirmView(r *http.Request, p pendingOAuth) (views.OAuthConfirm, store.User, error) {
	c := a.oauth.providers[p.provider]
	v := views.OAuthConfirm{Provider: c.label, Email: p.email, TermsVersion: TermsVersion}
	if p.email == "" || !p.verified {
		v.Message = c.label + " did not give tunelab a verified email address, so no account can be made or linked with it. " +
			"Verify your address with " + c.label + " and try again, or sign up with an email and password."
		existing, err := a.store.UserByEmail(r.Context(), p.email)
		if err == nil && existing.ID != 0 && p.email != "" {
			v.Message = "An account with this email exists, but " + c.label + " does not say the address is verified, so it is not linked. " +
				"Sign in with your password, then link " + c.label + " in Settings."
		}
		return v, store.User{}, nil
	}
	existing, err := a.store.UserByEmail(r.Context(), p.email)
	if errors.Is(err, store.ErrNotFound) {
		v.AskTerms = true
		return v, store.User{}, nil
	}
	if err != nil {
		return v, store.User{}, err
	}
	has, err := a.store.HasPassword(r.Context(), existing.ID)
	if err != nil {
		return v, store.User{}, err
	}
	if !has {
		v.Message = "An account with this email exists and signs in with another provider. Sign in with it, then link " + c.label + " in Settings."
		return v, existing, nil
	}
	v.AskPassword = true
	return v, existing, nil
}

func (a *app) showOAuthConfirm(w http.ResponseWriter, r *http.Request) {
	if _, ok := userFrom(r.Context()); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	p, ok := a.oauthPending(r)
	if !ok {
		a.sessions.Put(r.Context(), signInNoticeKey, "That sign-in waited too long. Start again.")
		redirect(w, r, "/signin")
		return
	}
	v, _, err := a.confirmView(r, p)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	a.render(w, r, http.StatusOK, a.page(r, "Sign in with "+v.Provider, "signin"), views.OAuthConfirmPage(v))
}

// confirmOAuth links the waiting provider account to the account with its email (after
// the password), or creates an account for it (after the terms).
func (a *app) confirmOAuth(w http.ResponseWriter, r *http.Request) {
	p, ok := a.oauthPending(r)
	if !ok {
		a.sessions.Put(r.Context(), signInNoticeKey, "That sign-in waited too long. Start again.")
		redirect(w, r, "/signin")
		return
	}
	c := a.oauth.providers[p.provider]
	v, existing, err := a.confirmView(r, p)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	pg := a.page(r, "Sign in with "+c.label, "signin")
	w.Header().Set("Cache-Control", "no-store")
	show := func(status int) { a.render(w, r, status, pg, views.OAuthConfirmPage(v)) }
	switch {
	case v.AskPassword:
		a.confirmLink(w, r, c, p, v, existing, show)
	case v.AskTerms:
		if r.PostFormValue("accept_terms") == "" {
			v.TermsError = "Accept the terms of service to create an account."
			show(http.StatusUnprocessableEntity)
			return
		}
		u, err := a.store.CreateOAuthUser(r.Context(), store.NewOAuthUser{Email: p.email, EmailVerified: true, DisplayName: p.name,
			TermsVersion: TermsVersion, Provider: c.name, Subject: p.subject})
		if errors.Is(err, store.ErrEmailTaken) || errors.Is(err, store.ErrIdentityTaken) {
			v.FormError = "An account was made for this address or " + c.label + " account meanwhile. Sign in instead."
			show(http.StatusConflict)
			return
		}
		var verr *store.ValidationError
		if errors.As(err, &verr) {
			v.AskTerms, v.Message = false, "The address "+p.email+" cannot be used for an account here. Sign up with an email and password instead."
			show(http.StatusUnprocessableEntity)
			return
		}
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		a.clearOAuthPending(r)
		a.recordEvent(r, store.EventSignUp, u.ID, u.Email)
		a.recordEvent(r, store.EventOAuthLinked, u.ID, u.Email)
		if err := a.startSession(r, u); err != nil {
			a.serverError(w, r, err)
			return
		}
		a.noteDevice(r, u, false)
		redirect(w, r, "/")
	default:
		show(http.StatusConflict)
	}
}

// confirmLink checks the existing account's password, then links and signs in (with the
// two-factor step when it is on). Attempts count as sign-in attempts.
func (a *app) confirmLink(w http.ResponseWriter, r *http.Request, c *oauthClient, p pendingOAuth, v views.OAuthConfirm, existing store.User, show func(int)) {
	ip := limitKey(a.clientIP(r))
	if blocked, wait := a.limits.signInIP.blocked(ip); blocked {
		a.recordEvent(r, store.EventRateLimited, existing.ID, existing.Email)
		v.FormError = tooManyAttempts(wait)
		w.Header().Set("Retry-After", retryAfter(wait))
		show(http.StatusTooManyRequests)
		return
	}
	a.limits.signInIP.hit(ip)
	ok, err := a.hashing(w, r, func() error {
		_, err := a.passwords.Authenticate(r.Context(), existing.Email, r.PostFormValue("password"))
		return err
	})
	if !ok {
		return
	}
	if errors.Is(err, store.ErrBadCredentials) {
		a.limits.signInFailures.hit(existing.Email)
		a.recordEvent(r, store.EventSignInFailed, existing.ID, existing.Email)
		v.PasswordError = "That is not the password of this account."
		show(http.StatusUnprocessableEntity)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if a.refuseSuspended(r, existing, func(msg string) { v.AskPassword, v.Message = false, msg; show(http.StatusForbidden) }) {
		return
	}
	err = a.store.LinkIdentity(r.Context(), existing.ID, c.name, p.subject, p.email)
	if errors.Is(err, store.ErrProviderLinked) || errors.Is(err, store.ErrIdentityTaken) {
		v.AskPassword, v.Message = false, "This account is already linked to another "+c.label+" account. Sign in with your password and look at Settings."
		show(http.StatusConflict)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.clearOAuthPending(r)
	a.limits.signInFailures.reset(existing.Email)
	a.recordEvent(r, store.EventOAuthLinked, existing.ID, existing.Email)
	a.completeSignIn(w, r, existing, c.name, p.next)
}

// unlinkProvider removes a link in Settings, never the last way to sign in.
func (a *app) unlinkProvider(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	name := r.PathValue("provider")
	label := providerLabel(name)
	if label == "" {
		a.notFound(w, r)
		return
	}
	err := a.store.UnlinkIdentity(r.Context(), u.ID, name)
	switch {
	case errors.Is(err, store.ErrLastSignInMethod):
		a.sessions.Put(r.Context(), settingsErrorKey, label+" is the only way you sign in. Set a password or link another provider first, then unlink "+label+".")
	case errors.Is(err, store.ErrNotFound):
		a.sessions.Put(r.Context(), settingsErrorKey, label+" is not linked to your account.")
	case err != nil:
		a.serverError(w, r, err)
		return
	default:
		a.recordEvent(r, store.EventOAuthUnlinked, u.ID, u.Email)
		a.sessions.Put(r.Context(), settingsNoticeKey, label+" is unlinked: it no longer signs you in.")
	}
	redirect(w, r, "/settings#sign-in-methods")
}

func providerLabel(name string) string {
	switch name {
	case store.ProviderGoogle:
		return "Google"
	case store.ProviderGitHub:
		return "GitHub"
	}
	return ""
}

// signInMethods is the Settings section's view: the password and each provider that is
// configured or linked.
func (a *app) signInMethods(r *http.Request, u store.User) (views.SignInMethods, error) {
	has, err := a.store.HasPassword(r.Context(), u.ID)
	if err != nil {
		return views.SignInMethods{}, err
	}
	ids, err := a.store.Identities(r.Context(), u.ID)
	if err != nil {
		return views.SignInMethods{}, err
	}
	m := views.SignInMethods{HasPassword: has}
	linked := map[string]store.Identity{}
	for _, id := range ids {
		linked[id.Provider] = id
	}
	for _, name := range []string{store.ProviderGoogle, store.ProviderGitHub} {
		id, isLinked := linked[name]
		if !isLinked && a.oauth.providers[name] == nil {
			continue
		}
		row := views.SignInMethod{Name: name, Label: providerLabel(name), Linked: isLinked, CanLink: a.oauth.providers[name] != nil}
		if isLinked {
			row.Detail = "Linked " + id.CreatedAt.UTC().Format("2 January 2006")
			if id.Email != "" {
				row.Detail = id.Email + " · " + row.Detail
			}
			row.CanUnlink = has || len(ids) > 1
		}
		m.Providers = append(m.Providers, row)
	}
	return m, nil
}

// oauthCookieName is the provider sign-in cookie's name for the legal pages; "" when no
// provider is configured (then no such cookie is ever set).
func (a *app) oauthCookieName() string {
	if len(a.oauth.order) == 0 {
		return ""
	}
	return a.oauth.name
}

// providerNames names the configured providers in words: "Google and GitHub".
func (a *app) providerNames() string {
	var names []string
	for _, n := range a.oauth.order {
		names = append(names, providerLabel(n))
	}
	return strings.Join(names, " and ")
}

// allowProviderForms lets the Settings page's Link forms go on to the providers: their
// 303 leads to the provider's authorize page, which browsers check against form-action.
func (a *app) allowProviderForms(w http.ResponseWriter, r *http.Request) {
	var extra []string
	for _, name := range a.oauth.order {
		u, err := url.Parse(a.oauth.providers[name].conf.Endpoint.AuthURL)
		if err == nil && u.Host != "" && (u.Scheme == "https" || u.Scheme == "http") {
			extra = append(extra, u.Scheme+"://"+u.Host)
		}
	}
	if len(extra) > 0 {
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy(templ.GetNonce(r.Context()))+" "+strings.Join(extra, " "))
	}
}
