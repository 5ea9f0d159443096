package main

// Browser tests: they drive the real server in headless Chromium through chromedp.
//
// chromedp v0.23.0 has the generic API: an action returns its value
// (chromedp.Run(ctx, chromedp.Title())), chromedp.Do runs actions that return nothing,
// and selectors are typed (chromedp.CSS("...")). See docs/MIGRATION.md in the module.
//
// Without Chromium the tests skip loudly, except under CI=true, where they fail.
// scripts/test-deps.sh installs it. Screenshots go to $TUNELAB_TEST_OUTPUT, or to
// test-output/browser in the repository root.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browserTestTimeout bounds one browser test, from the start of Chromium to the last check.
// It is a bound against hangs, not a speed check: a test that trains a run waits for real
// training, which on a shared 2-core machine running other packages' race tests takes
// several times longer than on a quiet one.
const browserTestTimeout = 4 * time.Minute

// testLogWriter forwards the server's log lines to t.Log until close.
type testLogWriter struct {
	mu     sync.Mutex
	t      testing.TB
	prefix string
	closed bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// lockedBuffer collects Chromium's own output, which the allocator writes from another goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// findChromium returns the Chromium binary, or skips the test (fails it under CI=true).
func findChromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is required in CI: install it with scripts/test-deps.sh")
	}
	msg := "SKIPPING BROWSER TESTS: chromium not installed; run scripts/test-deps.sh"
	banner := strings.Repeat("!", len(msg))
	fmt.Fprintf(os.Stderr, "\n%s\n%s\n%s\n\n", banner, msg, banner)
	t.Skip(msg)
	return ""
}

// browserIssue is a console error, an uncaught exception, an error in the browser log or
// a Content-Security-Policy violation that the page reported.
type browserIssue struct {
	Kind   string // "console", "exception", "log", "csp"
	Source string // for "log": the part of the browser, such as "network" or "security"
	Text   string
	URL    string
}

func (i browserIssue) String() string {
	s := i.Kind
	if i.Source != "" {
		s += "/" + i.Source
	}
	s += ": " + i.Text
	if i.URL != "" && !strings.Contains(i.Text, i.URL) {
		s += " (" + i.URL + ")"
	}
	return s
}

// cspViolationPrefix marks the console.error calls of the securitypolicyviolation
// listener that cspListenerJS installs in every document.
const cspViolationPrefix = "tunelab-test CSP violation: "

// cspListenerJS runs before the page's own scripts in every document. A script added
// through the DevTools protocol is not subject to the page's CSP, so it can report each
// violation: the console listener of browserRecorder turns the report into a "csp" issue.
const cspListenerJS = `(() => {
  document.addEventListener("securitypolicyviolation", (e) => {
    console.error(` + "`" + cspViolationPrefix + "`" + ` + JSON.stringify({
      directive: e.effectiveDirective || e.violatedDirective,
      blocked: e.blockedURI || "(inline)",
      source: e.sourceFile || "",
      line: e.lineNumber || 0,
      sample: e.sample || "",
      disposition: e.disposition,
    }));
  }, true);
})();`

// browserRecorder keeps the issues the tab reports. Its listener runs on chromedp's
// read loop, so it only appends under the lock.
type browserRecorder struct {
	mu     sync.Mutex
	issues []browserIssue
}

func (r *browserRecorder) listen(ev any) {
	var issue browserIssue
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		issue = browserIssue{Kind: "console", Text: remoteObjectsText(ev.Args)}
		if rest, ok := strings.CutPrefix(issue.Text, cspViolationPrefix); ok {
			issue = browserIssue{Kind: "csp", Text: rest}
		}
		if ev.StackTrace != nil && len(ev.StackTrace.CallFrames) > 0 {
			f := ev.StackTrace.CallFrames[0]
			issue.URL = fmt.Sprintf("%s:%d", f.URL, f.LineNumber+1)
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		if d == nil {
			return
		}
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		issue = browserIssue{Kind: "exception", Text: text, URL: fmt.Sprintf("%s:%d", d.URL, d.LineNumber+1)}
	case *cdplog.EventEntryAdded:
		if ev.Entry == nil || ev.Entry.Level != cdplog.EntryLevelError {
			return
		}
		issue = browserIssue{Kind: "log", Source: string(ev.Entry.Source), Text: ev.Entry.Text, URL: ev.Entry.URL}
	default:
		return
	}
	r.mu.Lock()
	r.issues = append(r.issues, issue)
	r.mu.Unlock()
}

// take returns the issues recorded since the last call and forgets them.
func (r *browserRecorder) take() []browserIssue {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.issues
	r.issues = nil
	return out
}

func remoteObjectsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == nil:
		case a.Type == runtime.RemoteObjectTypeString:
			var s string
			if err := json.Unmarshal(a.Value, &s); err == nil {
				parts = append(parts, s)
			} else {
				parts = append(parts, string(a.Value))
			}
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
		case a.UnserializableValue != "":
			parts = append(parts, string(a.UnserializableValue))
		default:
			parts = append(parts, a.Description)
		}
	}
	return strings.Join(parts, " ")
}

// browser is one Chromium tab with its recorder.
type browser struct {
	t       *testing.T
	ctx     context.Context
	rec     *browserRecorder
	outDir  string
	baseURL string
}

// newBrowser starts headless Chromium with a fresh profile and opens one tab. The tab,
// the browser process and the test's time limit all end in the test's cleanups.
func newBrowser(t *testing.T, baseURL string) *browser {
	t.Helper()
	return newBrowserWithin(t, baseURL, browserTestTimeout)
}

// newBrowserWithin is newBrowser with its own time limit, for a test that trains runs.
func newBrowserWithin(t *testing.T, baseURL string, limit time.Duration) *browser {
	t.Helper()
	execPath := findChromium(t)

	ctx, cancelTimeout := context.WithTimeout(context.Background(), limit)
	if dl, ok := t.Deadline(); ok {
		var cancelDeadline context.CancelFunc
		ctx, cancelDeadline = context.WithDeadline(ctx, dl.Add(-5*time.Second))
		t.Cleanup(cancelDeadline)
	}
	t.Cleanup(cancelTimeout)

	chromeOut := &lockedBuffer{}
	opts := slices.Clone(chromedp.DefaultExecAllocatorOptions[:])
	opts = append(opts,
		chromedp.ExecPath(execPath),
		chromedp.Headless, // --headless
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(chromeOut),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	// Cleanups run last-registered first: the tab closes, then the allocator kills
	// Chromium and waits for it, then the profile directory above is removed.
	// chromedp logs from its own goroutines; nothing may reach t.Log after the test.
	cdpLog := &testLogWriter{t: t, prefix: "chromedp: "}
	logf := func(format string, args ...any) { fmt.Fprintf(cdpLog, format, args...) }
	t.Cleanup(func() {
		cancelAlloc()
		cdpLog.close()
		if t.Failed() {
			if out := strings.TrimSpace(chromeOut.String()); out != "" {
				t.Logf("chromium output:\n%s", out)
			}
		}
	})

	rec := &browserRecorder{}
	tabCtx, cancelTab := chromedp.NewContext(allocCtx,
		chromedp.WithListener(rec.listen),
		chromedp.WithLogf(logf),
		chromedp.WithErrorf(logf),
	)
	t.Cleanup(cancelTab)

	start := time.Now()
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("start chromium %s: %v\n%s", execPath, err, chromeOut.String())
	}
	if _, err := chromedp.Call(tabCtx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListenerJS}); err != nil {
		t.Fatalf("add the CSP violation listener: %v", err)
	}
	t.Logf("chromium started in %s", time.Since(start).Round(time.Millisecond))

	return &browser{t: t, ctx: tabCtx, rec: rec, outDir: testOutputDir(t, "browser"), baseURL: baseURL}
}

// testOutputDir returns $TUNELAB_TEST_OUTPUT, or test-output/<sub> in the repository
// root (the package directory of this test), and creates it.
func testOutputDir(t testing.TB, sub string) string {
	t.Helper()
	dir := os.Getenv("TUNELAB_TEST_OUTPUT")
	if dir == "" {
		dir = filepath.Join("test-output", sub)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("test output dir %q: %v", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		t.Fatalf("create test output dir: %v", err)
	}
	return abs
}

// do runs actions and fails the test with what on error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// open navigates to path and checks the status of the document and its CSP header.
func (b *browser) open(path string, wantStatus int) {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(b.baseURL+path))
	if err != nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	if int(resp.Status) != wantStatus {
		b.t.Fatalf("open %s: status %d, want %d", path, resp.Status, wantStatus)
	}
	// The "no CSP violations" checks mean little without a policy to violate.
	csp := ""
	for k, v := range resp.Headers {
		if strings.EqualFold(k, "Content-Security-Policy") {
			csp = fmt.Sprint(v)
		}
	}
	if !strings.Contains(csp, "script-src") && !strings.Contains(csp, "default-src") {
		b.t.Errorf("open %s: no Content-Security-Policy with script-src or default-src; got %q", path, csp)
	}
}

// waitFor polls the JavaScript expression until it is true. It survives navigations,
// which chromedp.Poll does not: each try is a fresh evaluation in the current document,
// and an evaluation that fails while a document is replaced is tried again.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	b.waitForWithin(what, expr, 10*time.Second)
}

// waitForWithin is waitFor with its own time limit, for things that take a while (a run).
func (b *browser) waitForWithin(what, expr string, limit time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, limit)
	defer cancel()
	var lastErr error
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		if err == nil && ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			loc, _ := chromedp.Run(b.ctx, chromedp.Location())
			body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 1500) : ""`))
			b.t.Fatalf("timed out waiting for %s\n  expression: %s\n  location: %s\n  last error: %v\n  page text:\n%s",
				what, expr, loc, lastErr, body)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// eval evaluates a JavaScript expression and returns its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// text returns the trimmed innerText of the first element that matches the CSS selector,
// waiting (up to 10 s) for one that is rendered. It reads the live document in one
// evaluation: chromedp's node queries can still see the page from before a form's
// navigation for a moment, and answer with its stale text.
func (b *browser) text(sel string) string {
	b.t.Helper()
	expr := fmt.Sprintf(`(() => {
  const el = document.querySelector(%q);
  if (!el) return null;
  const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  if (r.width === 0 || r.height === 0 || s.visibility === "hidden" || s.display === "none") return null;
  return el.innerText;
})()`, sel)
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := chromedp.Run(b.ctx, chromedp.Evaluate[*string](expr))
		if err == nil && v != nil {
			return strings.TrimSpace(*v)
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("text of %s: no rendered element (last error: %v)", sel, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// visible reports whether an element matching sel is rendered with a size.
func (b *browser) visible(sel string) bool {
	b.t.Helper()
	return eval[bool](b, fmt.Sprintf(`(() => {
  const el = document.querySelector(%q);
  if (!el) return false;
  const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none";
})()`, sel))
}

// checkClean fails the test for every console error, exception, browser-log error or CSP
// violation since the last check. allow excuses issues that the step expects.
func (b *browser) checkClean(step string, allow ...func(browserIssue) bool) {
	b.t.Helper()
	// One round trip: chromedp hands the listener every event that Chrome sent before
	// the reply, so the issues of the work done so far are recorded when it returns.
	eval[bool](b, "true")
	for _, is := range b.rec.take() {
		if slices.ContainsFunc(allow, func(f func(browserIssue) bool) bool { return f(is) }) {
			b.t.Logf("%s: expected browser message: %s", step, is)
			continue
		}
		b.t.Errorf("%s: browser reported %s", step, is)
	}
}

// expectCSPViolation adds an inline script to the page, which a nonce-based policy must
// block, and fails the test unless the recorder reports that violation.
func (b *browser) expectCSPViolation() {
	b.t.Helper()
	eval[bool](b, `(() => {
  const s = document.createElement("script");
  s.textContent = "window.__tunelabCSPCanary = true";
  document.body.appendChild(s);
  return true;
})()`)
	deadline := time.Now().Add(3 * time.Second)
	for {
		if eval[bool](b, `window.__tunelabCSPCanary === true`) {
			b.t.Fatal("an inline script without a nonce ran: the page's CSP does not block inline scripts")
		}
		var seen bool
		for _, is := range b.rec.take() {
			if is.Kind == "csp" && strings.Contains(is.Text, "script-src") {
				seen = true
				continue
			}
			if !(is.Kind == "log" && is.Source == "security") { // Chrome's own copy of the report
				b.t.Errorf("CSP canary: unexpected browser message: %s", is)
			}
		}
		if seen {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatal("CSP canary: an inline script was blocked or ignored, but no securitypolicyviolation was reported; the CSP checks of this test see nothing")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves a full-page PNG of the current page as <name>.png in the output dir.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	// Park the pointer in a corner: after a click it would hover whatever the swap moved
	// under it. Then let web fonts and the last layout settle.
	b.do("move the pointer away", chromedp.MouseEvent(chromedp.MouseMoved, 0, 0))
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](
		`document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true)))))`,
		chromedp.EvalAwaitPromise)); err != nil {
		b.t.Fatalf("screenshot %s: wait for fonts: %v", name, err)
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // quality 100 gives PNG
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.outDir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("write screenshot: %v", err)
	}
	b.t.Logf("screenshot %s: %s", name, path)
}

// desktop and phone set the viewport of the tab.
func (b *browser) desktop() {
	b.t.Helper()
	b.do("desktop viewport", chromedp.EmulateViewport(1280, 900))
}

func (b *browser) phone() {
	b.t.Helper()
	b.do("phone viewport", chromedp.EmulateViewport(390, 844,
		chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
}

// pathIs is a JavaScript condition: the document is at path and has finished parsing.
// phoneFits switches to the 390px phone viewport and checks the page does not scroll sideways.
func (b *browser) phoneFits(page string) {
	b.t.Helper()
	b.phone()
	b.waitFor("the phone layout", `window.innerWidth === 390`)
	if overflow := eval[int](b, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); overflow > 0 {
		b.t.Errorf("%s at 390px: the page scrolls sideways by %dpx", page, overflow)
	}
}

func pathIs(path string) string {
	return fmt.Sprintf(`location.pathname === %q && document.readyState !== "loading"`, path)
}

func has(sel string) string {
	return fmt.Sprintf(`document.querySelector(%q) !== null`, sel)
}

// htmxReady is true once htmx has loaded and processed the document, so a submit goes
// through hx-post and not through the plain form fallback.
const htmxReady = `typeof window.htmx !== "undefined" && document.readyState === "complete"`

func TestBrowserSignUpSignOutSignIn(t *testing.T) {
	execStart := time.Now()
	findChromium(t) // skip before starting a server we would not use
	base := startServer(t)
	b := newBrowser(t, base)
	b.desktop()

	const (
		email    = "ada@example.com"
		password = "correct horse battery staple"
	)

	// Sign up.
	b.open("/signup", http.StatusOK)
	b.waitFor("the sign-up form and htmx", has(`[data-testid=signup-form]`)+" && "+htmxReady)
	b.checkClean("sign-up page")
	if eval[bool](b, has(`[data-testid=nav-signup]`)) {
		t.Error(`the sign-up page offers "Create account" in the header`)
	}
	b.screenshot("01-signup-desktop")
	b.do("fill in the sign-up form",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=email]`), email, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signup-form] input[name=password]`), password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] input[name=accept_terms]`), chromedp.NodeVisible),
	)
	if !eval[bool](b, `document.querySelector("[data-testid=signup-form] input[name=accept_terms]").checked`) {
		t.Fatal("the terms checkbox is not checked after a click")
	}
	b.do("submit the sign-up form",
		chromedp.Click(chromedp.CSS(`[data-testid=signup-form] button[type=submit]`), chromedp.NodeVisible))

	// The dashboard, with the first-run empty state.
	b.waitFor("the dashboard after sign-up", pathIs("/")+" && "+has(`[data-testid=dashboard]`))
	b.checkDashboard(email, true)
	b.checkClean("dashboard after sign-up")
	b.screenshot("02-dashboard-desktop")

	b.phoneFits("dashboard")
	// The phone header is two compact rows: brand and account, then the nav as one row that
	// scrolls sideways (it never wraps into a third row).
	if h := eval[int](b, `document.querySelector(".topbar").offsetHeight`); h > 100 {
		t.Errorf("header at 390px is %dpx tall, want at most 100px", h)
	}
	if rows := eval[int](b, `new Set([...document.querySelectorAll("[data-testid=nav] a")].map(a => a.offsetTop)).size`); rows != 1 {
		t.Errorf("nav at 390px has %d rows, want 1", rows)
	}
	b.screenshot("03-dashboard-phone")
	b.checkClean("dashboard on a phone")
	b.desktop()

	// Sign out.
	b.do("sign out", chromedp.Click(chromedp.CSS(`[data-testid=signout]`), chromedp.NodeVisible))
	b.waitFor("the signed-out page", pathIs("/signin")+` && location.search.includes("signed_out=1") && `+has(`[data-testid=flash]`))
	if got := b.text(`[data-testid=flash]`); !strings.Contains(strings.ToLower(got), "signed out") {
		t.Errorf("flash after sign-out = %q, want it to say that you signed out", got)
	}
	if eval[bool](b, has(`[data-testid=nav]`)) {
		t.Error("the signed-in navigation is still shown after sign-out")
	}
	b.checkClean("signed-out page")

	// Sign in with a wrong password: the form comes back in place with an error.
	b.waitFor("htmx on the sign-in page", has(`[data-testid=signin-form]`)+" && "+htmxReady)
	b.do("fill in the sign-in form with a wrong password",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=email]`), email, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=password]`), "wrong horse battery staple", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signin-form] button[type=submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the sign-in error", has(`[data-testid=signin-form] [data-testid=form-error]`))
	if !b.visible(`[data-testid=form-error]`) {
		t.Error("the sign-in error is in the page but not visible")
	}
	if got := eval[string](b, `location.pathname`); got != "/signin" {
		t.Errorf("after a wrong password the browser is at %s, want /signin", got)
	}
	if got := eval[int](b, `document.querySelectorAll("[data-testid=signin-form]").length`); got != 1 {
		t.Errorf("after the swap the page has %d sign-in forms, want 1", got)
	}
	if got := eval[string](b, `document.querySelector("[data-testid=signin-form] input[name=email]").value`); got != email {
		t.Errorf("after a wrong password the email field holds %q, want %q kept", got, email)
	}
	if got := eval[string](b, `document.querySelector("[data-testid=signin-form] input[name=password]").value`); got != "" {
		t.Errorf("after a wrong password the password field still holds the password")
	}
	if eval[bool](b, has(`[data-testid=flash]`)) {
		t.Error("the signed-out notice is still shown after the form came back with an error")
	}
	// The submit button that had focus was swapped out; focus moves to the password field
	// (it has autofocus, which htmx honours after a swap), not back to <body>.
	b.waitFor("focus on the password field after the swap",
		`document.activeElement && document.activeElement.matches("[data-testid=signin-form] input[name=password]")`)
	b.checkClean("sign-in with a wrong password", expectedStatus("/signin", http.StatusUnprocessableEntity))
	b.screenshot("04-signin-error-desktop")

	// Sign in with the right password.
	b.do("sign in", // the password field came back empty (checked above)
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=password]`), password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signin-form] button[type=submit]`), chromedp.NodeVisible),
	)
	b.waitFor("the dashboard after sign-in", pathIs("/")+" && "+has(`[data-testid=dashboard]`))
	b.checkDashboard(email, true)
	b.checkClean("dashboard after sign-in")

	// The clean checks above are worth something only if a violation would be seen:
	// break the policy once on purpose, with an inline script, and expect the report.
	b.expectCSPViolation()

	t.Logf("browser test took %s", time.Since(execStart).Round(time.Millisecond))
}

// checkDashboard checks the signed-in home page of a user with no runs and no datasets.
func (b *browser) checkDashboard(email string, wantEmpty bool) {
	b.t.Helper()
	if got := b.text(`[data-testid=user-email]`); got != email {
		b.t.Errorf("user-email shows %q, want %q", got, email)
	}
	if !b.visible(`[data-testid=nav]`) {
		b.t.Error("the main navigation is not visible on the dashboard")
	}
	if !wantEmpty {
		return
	}
	if !b.visible(`[data-testid=empty-state]`) {
		b.t.Fatal("the dashboard has no visible empty state for a new account")
	}
	for sel, want := range map[string]string{
		`[data-testid=empty-state] [data-testid=cta-upload]`: "Upload a dataset",
		`[data-testid=empty-state] [data-testid=cta-run]`:    "Start a run",
	} {
		if got := b.text(sel); got != want {
			b.t.Errorf("%s says %q, want %q", sel, got, want)
		}
		if href := eval[string](b, fmt.Sprintf(`document.querySelector(%q).getAttribute("href") || ""`, sel)); href == "" {
			b.t.Errorf("%s has no href", sel)
		}
	}
}

// expectedStatus excuses the browser's network error for a response with this status
// to a request for path, such as the 422 of a form that the server sends back with errors.
func expectedStatus(path string, status int) func(browserIssue) bool {
	return func(is browserIssue) bool {
		return is.Kind == "log" && is.Source == "network" &&
			strings.Contains(is.Text, fmt.Sprintf("status of %d", status)) &&
			strings.HasSuffix(strings.SplitN(is.URL, "?", 2)[0], path)
	}
}
