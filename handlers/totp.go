package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tunelab/store"
	"tunelab/views"
)

// Half-signed-in state: after a right password for an account with two-factor sign-in,
// the session holds only these keys (never store.SessionUserKey) until a right code.
const (
	pending2FAUser = "pending_2fa_user"
	pending2FAAt   = "pending_2fa_at" // Unix milliseconds of the right password
	pending2FANext = "pending_2fa_next"
	// pending2FATTL is how long a right password waits for its code.
	pending2FATTL = 5 * time.Minute
	qrPath        = "/settings/2fa/qr.png"
)

const (
	badCode        = "That code is not right, or was already used. Type the newest code from your app."
	pending2FAGone = "Sign in again: the code was not typed within 5 minutes."
)

func (a *app) twoFactorView(r *http.Request, u store.User) (views.TwoFactor, error) {
	st, err := a.store.TOTPState(r.Context(), u.ID)
	if err != nil {
		return views.TwoFactor{}, err
	}
	t := views.TwoFactor{Enabled: st.Enabled, Pending: st.Pending, RecoveryLeft: st.RecoveryCodes}
	if st.Pending {
		key, err := a.store.PendingTOTP(r.Context(), a.vault, u.ID, u.Email)
		if err != nil {
			return t, err
		}
		t.ManualKey, t.QRPath = groupKey(key.Secret), qrPath
	}
	return t, nil
}

// groupKey writes a base32 key in groups of four, as authenticator apps show them.
func groupKey(s string) string {
	var parts []string
	for len(s) > 4 {
		parts, s = append(parts, s[:4]), s[4:]
	}
	return strings.Join(append(parts, s), " ")
}

func (a *app) showTwoFactor(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	t, err := a.twoFactorView(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, a.page(r, "Two-factor sign-in", "settings"), views.TwoFactorPage(t))
}

// showTOTPQR serves the pending key's QR code as a PNG made by the library.
func (a *app) showTOTPQR(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	key, err := a.store.PendingTOTP(r.Context(), a.vault, u.ID, u.Email)
	if errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	img, err := key.Key().Image(200, 200)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// changeTwoFactor handles the forms of /settings/2fa, named by the field action: begin
// (password), confirm (code), regenerate (code), disable (password and code).
func (a *app) changeTwoFactor(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	action := r.PostFormValue("action")
	t, err := a.twoFactorView(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	t.Form = action
	p := a.page(r, "Two-factor sign-in", "settings")
	show := func(status int) { a.render(w, r, status, p, views.TwoFactorPage(t)) }
	key := strconv.FormatInt(u.ID, 10)
	if blocked, wait := a.limits.totpAccount.blocked(key); blocked {
		a.recordEvent(r, store.EventRateLimited, u.ID, u.Email)
		t.FormError = tooManyAttempts(wait)
		w.Header().Set("Retry-After", retryAfter(wait))
		show(http.StatusTooManyRequests)
		return
	}
	code := r.PostFormValue("code")
	if action == "begin" || action == "disable" {
		if !a.checkPassword(w, r, u, &t) {
			if t.PasswordError != "" {
				a.limits.totpAccount.hit(key)
				show(http.StatusUnprocessableEntity)
			}
			return
		}
	}
	var codes []string
	switch action {
	case "begin":
		if _, err = a.store.BeginTOTP(r.Context(), a.vault, u.ID, u.Email); err == nil {
			redirect(w, r, "/settings/2fa")
			return
		}
	case "confirm":
		if codes, err = a.store.ConfirmTOTP(r.Context(), a.vault, u.ID, code); err == nil {
			a.recordEvent(r, store.EventTOTPEnabled, u.ID, u.Email)
			a.mailTwoFactor(r, u, true)
			t.Notice = "Two-factor sign-in is on. Next time you sign in, have your app ready."
		}
	case "regenerate":
		if codes, err = a.store.RegenerateRecoveryCodes(r.Context(), a.vault, u.ID, code); err == nil {
			a.recordEvent(r, store.EventRecoveryCodesRenewed, u.ID, u.Email)
			t.Notice = "New recovery codes made; the old ones no longer work."
		}
	case "disable":
		if err = a.store.DisableTOTP(r.Context(), a.vault, u.ID, code); err == nil {
			a.recordEvent(r, store.EventTOTPDisabled, u.ID, u.Email)
			a.mailTwoFactor(r, u, false)
			t.Notice = "Two-factor sign-in is off."
		}
	default:
		a.badRequest(w, r, "Unknown action.")
		return
	}
	switch {
	case errors.Is(err, store.ErrBadCode):
		a.limits.totpAccount.hit(key)
		a.recordEvent(r, store.EventTOTPFailed, u.ID, u.Email)
		t.CodeError = badCode
		show(http.StatusUnprocessableEntity)
		return
	case errors.Is(err, store.ErrTOTPEnabled), errors.Is(err, store.ErrTOTPOff), errors.Is(err, store.ErrNotFound):
		t.FormError = "That does not match how two-factor sign-in is set up now; the page shows where it stands."
		show(http.StatusConflict)
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	// A change of how the account signs in: a new token for this session.
	if err := a.sessions.RenewToken(r.Context()); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.limits.totpAccount.reset(key)
	nt, err := a.twoFactorView(r, u)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	nt.Notice, nt.NewCodes = t.Notice, codes
	t = nt
	show(http.StatusOK)
}

// checkPassword checks the field password against u's; on a wrong one it sets the field
// error and returns false (a failure that answered already leaves it empty).
func (a *app) checkPassword(w http.ResponseWriter, r *http.Request, u store.User, t *views.TwoFactor) bool {
	ok, err := a.hashing(w, r, func() error {
		_, err := a.passwords.Authenticate(r.Context(), u.Email, r.PostFormValue("password"))
		return err
	})
	if !ok {
		return false
	}
	if errors.Is(err, store.ErrBadCredentials) {
		t.PasswordError = "That is not your password."
		if has, herr := a.store.HasPassword(r.Context(), u.ID); herr == nil && !has {
			t.PasswordError = "Your account has no password yet: set one in Settings first, then turn on two-factor sign-in."
		}
		return false
	}
	if err != nil {
		a.serverError(w, r, err)
		return false
	}
	return true
}

// downloadRecoveryCodes sends back the codes the page just showed as a text file. It
// stores nothing: the codes come from the page's own form, and only well-formed codes
// are written.
func (a *app) downloadRecoveryCodes(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	b.WriteString("tunelab recovery codes\n\nEach code signs you in once, instead of a code from your app.\n\n")
	n := 0
	for _, c := range r.PostForm["code"] {
		if store.NormalizeRecoveryCode(c) != "" && n < store.RecoveryCodeCount {
			fmt.Fprintf(&b, "%s\n", strings.ToLower(strings.TrimSpace(c)))
			n++
		}
	}
	if n == 0 {
		a.badRequest(w, r, "No recovery codes were sent.")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="tunelab-recovery-codes.txt"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(b.String()))
}

// beginSecondStep keeps a right password's account in the session without signing in,
// and sends the person to the code form.
func (a *app) beginSecondStep(w http.ResponseWriter, r *http.Request, u store.User, next string) {
	if err := a.sessions.RenewToken(r.Context()); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.sessions.Put(r.Context(), pending2FAUser, u.ID)
	a.sessions.Put(r.Context(), pending2FAAt, a.now().UnixMilli())
	a.sessions.Put(r.Context(), pending2FANext, next)
	redirect(w, r, "/signin/2fa")
}

// pendingUser returns the account waiting for its code, or 0 when there is none or it
// waited longer than pending2FATTL (then the state is cleared and the sign-in page will
// say why).
func (a *app) pendingUser(r *http.Request) int64 {
	id := a.sessions.GetInt64(r.Context(), pending2FAUser)
	if id == 0 {
		return 0
	}
	at := time.UnixMilli(a.sessions.GetInt64(r.Context(), pending2FAAt))
	if age := a.now().Sub(at); age < 0 || age > pending2FATTL {
		a.clearPending(r)
		a.sessions.Put(r.Context(), signInNoticeKey, pending2FAGone)
		return 0
	}
	return id
}

func (a *app) clearPending(r *http.Request) {
	for _, k := range []string{pending2FAUser, pending2FAAt, pending2FANext, pending2FAVia} {
		a.sessions.Remove(r.Context(), k)
	}
}

func (a *app) showSignInCode(w http.ResponseWriter, r *http.Request) {
	if _, ok := userFrom(r.Context()); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if a.pendingUser(r) == 0 {
		redirect(w, r, "/signin")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	a.render(w, r, http.StatusOK, a.page(r, "Two-factor sign-in", "signin"), views.SignInCodePage(views.SignInCode{}))
}

// signInWithCode finishes signing in with a TOTP code or a recovery code. Attempts are
// limited per account and per client address.
func (a *app) signInWithCode(w http.ResponseWriter, r *http.Request) {
	id := a.pendingUser(r)
	if id == 0 {
		redirect(w, r, "/signin")
		return
	}
	p := a.page(r, "Two-factor sign-in", "signin")
	f := views.SignInCode{}
	w.Header().Set("Cache-Control", "no-store")
	ip := limitKey(a.clientIP(r))
	account := strconv.FormatInt(id, 10)
	if wait, limited := a.checkLimits(a.limits.totpIP, ip, a.limits.totpAccount, account); limited {
		a.recordEvent(r, store.EventRateLimited, id, "")
		f.Error = tooManyAttempts(wait)
		w.Header().Set("Retry-After", retryAfter(wait))
		a.render(w, r, http.StatusTooManyRequests, p, views.SignInCodePage(f))
		return
	}
	u, err := a.store.UserByID(r.Context(), id)
	if err != nil {
		a.clearPending(r)
		a.serverError(w, r, err)
		return
	}
	if a.refuseSuspended(r, u, func(msg string) {
		a.clearPending(r)
		f.Error = msg
		a.render(w, r, http.StatusForbidden, p, views.SignInCodePage(f))
	}) {
		return
	}
	code := strings.TrimSpace(r.PostFormValue("code"))
	usedRecovery := store.NormalizeRecoveryCode(code) != ""
	if usedRecovery {
		err = a.store.UseRecoveryCode(r.Context(), u.ID, code)
	} else {
		err = a.store.VerifyTOTP(r.Context(), a.vault, u.ID, strings.ReplaceAll(code, " ", ""))
	}
	if errors.Is(err, store.ErrBadCode) || errors.Is(err, store.ErrTOTPOff) {
		a.limits.totpIP.hit(ip)
		a.limits.totpAccount.hit(account)
		a.recordEvent(r, store.EventTOTPFailed, u.ID, u.Email)
		f.Error = badCode
		a.render(w, r, http.StatusUnprocessableEntity, p, views.SignInCodePage(f))
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	next := a.sessions.GetString(r.Context(), pending2FANext)
	via := a.sessions.GetString(r.Context(), pending2FAVia)
	a.clearPending(r)
	a.limits.totpAccount.reset(account)
	if a.closedGate(w, r, u) {
		return
	}
	if err := a.startSession(r, u); err != nil {
		a.serverError(w, r, err)
		return
	}
	if usedRecovery {
		a.recordEvent(r, store.EventRecoveryCodeUsed, u.ID, u.Email)
	}
	a.recordSignIn(r, u, via)
	redirect(w, r, safeNext(next))
}
