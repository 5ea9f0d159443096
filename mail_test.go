package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"tunelab/store"
	"tunelab/store/storetest"
)

// An in-process SMTP server: it takes mails only after PLAIN auth with its credentials,
// and can refuse the first few with a temporary error.

type receivedMail struct {
	From string
	To   []string
	Data []byte
}

type smtpBackend struct {
	user, pass string
	mu         sync.Mutex
	failFirst  int // Data answers 451 this many times
	refused    int
	got        chan receivedMail
}

func (b *smtpBackend) NewSession(*gosmtp.Conn) (gosmtp.Session, error) {
	return &smtpSession{b: b}, nil
}

type smtpSession struct {
	b      *smtpBackend
	authed bool
	from   string
	to     []string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.b.user || pass != s.b.pass {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}
func (s *smtpSession) Mail(from string, _ *gosmtp.MailOptions) error {
	if !s.authed {
		return &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	s.from = from
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	if s.b.failFirst > 0 {
		s.b.failFirst--
		s.b.refused++
		s.b.mu.Unlock()
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	}
	s.b.mu.Unlock()
	s.b.got <- receivedMail{From: s.from, To: s.to, Data: data}
	return nil
}
func (s *smtpSession) Reset()        { s.from, s.to = "", nil }
func (s *smtpSession) Logout() error { return nil }

// startSMTP runs the server on 127.0.0.1 and returns its TUNELAB_SMTP_URL.
func startSMTP(t *testing.T, failFirst int) (string, *smtpBackend) {
	t.Helper()
	be := &smtpBackend{user: "mailer", pass: "s3cret pass", failFirst: failFirst, got: make(chan receivedMail, 16)}
	srv := gosmtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // loopback only; net/smtp sends PLAIN to localhost without TLS
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "smtp://mailer:" + url.PathEscape("s3cret pass") + "@" + ln.Addr().String(), be
}

func (b *smtpBackend) next(t *testing.T) receivedMail {
	t.Helper()
	select {
	case m := <-b.got:
		return m
	case <-time.After(15 * time.Second):
		t.Fatal("no mail arrived within 15s")
	}
	return receivedMail{}
}

// mailParts reads a received mail: its headers and its text and HTML parts, decoded.
func mailParts(t *testing.T, data []byte) (mail.Header, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var text, html string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
	if text == "" || html == "" {
		t.Fatalf("want a text and an HTML part:\n%s", data)
	}
	return msg.Header, text, html
}

func TestParseSMTPURL(t *testing.T) {
	for _, tc := range []struct {
		raw, addr string
		implicit  bool
		user      string
		bad       bool
	}{
		{raw: "smtp://mail.example.com", addr: "mail.example.com:587"},
		{raw: "smtps://u:p%40ss@mail.example.com", addr: "mail.example.com:465", implicit: true, user: "u"},
		{raw: "smtp://u:p@127.0.0.1:2525", addr: "127.0.0.1:2525", user: "u"},
		{raw: "http://mail.example.com", bad: true},
		{raw: "smtp://", bad: true},
		{raw: "smtp://host:99999", bad: true},
	} {
		c, err := parseSMTPURL(tc.raw)
		if tc.bad {
			if err == nil {
				t.Errorf("%q accepted", tc.raw)
			}
			continue
		}
		if err != nil || c.Addr != tc.addr || c.Implicit != tc.implicit || c.Username != tc.user {
			t.Errorf("%q: %+v %v", tc.raw, c, err)
		}
	}
	if c, _ := parseSMTPURL("smtps://u:p%40ss@mail.example.com"); c.Password != "p@ss" || strings.Contains(c.String(), "p@ss") {
		t.Errorf("password %q, shown as %q", c.Password, c.String())
	}
	if _, err := loadConfig("serve", nil, envMap(map[string]string{"TUNELAB_SMTP_URL": "ftp://u:hunter2@x"})); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad URL: %v", err)
	}
}

var resetURL = regexp.MustCompile(`https?://[^\s"<>]+/password/reset\?token=[A-Za-z0-9_-]+`)

func TestPasswordResetMailOverSMTP(t *testing.T) {
	smtpURL, inbox := startSMTP(t, 0)
	addr, _ := startServerWith(t, map[string]string{"TUNELAB_SMTP_URL": smtpURL, "TUNELAB_MAIL_FROM": "tunelab <noreply@tune.example>"}, t.TempDir())
	base := "http://" + addr
	newClient := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	post := func(c *http.Client, path string, form url.Values) *http.Response {
		t.Helper()
		r, err := c.PostForm(base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r
	}
	ada := newClient()
	if r := post(ada, "/signup", url.Values{"email": {"ada@example.com"}, "password": {"an old long passphrase"}, "accept_terms": {"yes"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign up: %d", r.StatusCode)
	}
	// The sign-up mails a link that confirms the address; the banner asks for it until then.
	banner := func() bool {
		t.Helper()
		r, err := ada.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return strings.Contains(string(b), `data-testid="verify-banner"`)
	}
	if !banner() {
		t.Fatal("no banner before the address is confirmed")
	}
	welcome := inbox.next(t)
	wh, wtext, _ := mailParts(t, welcome.Data)
	verify := regexp.MustCompile(`https?://[^\s"<>]+/email/verify\?token=([A-Za-z0-9_-]+)`).FindStringSubmatch(wtext)
	if wh.Get("Subject") != "Confirm your email address" || verify == nil {
		t.Fatalf("verification mail %q:\n%s", wh.Get("Subject"), wtext)
	}
	if r, err := ada.Get(base + "/email/verify?token=" + verify[1]); err != nil || r.StatusCode != 200 {
		t.Fatalf("verify page: %v", err)
	} else {
		r.Body.Close()
	}
	if !banner() {
		t.Fatal("opening the link (as a mail scanner would) confirmed the address")
	}
	if r := post(ada, "/email/verify", url.Values{"token": {verify[1]}}); r.StatusCode != 200 || banner() {
		t.Fatalf("confirm: %d, banner still there", r.StatusCode)
	}

	if r := post(newClient(), "/password/forgot", url.Values{"email": {"ada@example.com"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("forgot: %d", r.StatusCode)
	}
	m := inbox.next(t)
	hdr, text, html := mailParts(t, m.Data)
	if m.From != "noreply@tune.example" || len(m.To) != 1 || m.To[0] != "ada@example.com" || hdr.Get("Subject") != "Reset your tunelab password" {
		t.Fatalf("envelope %s -> %v, subject %q", m.From, m.To, hdr.Get("Subject"))
	}
	link := resetURL.FindString(text)
	if link == "" || !strings.Contains(html, link) {
		t.Fatalf("no reset link in the mail:\n%s", text)
	}
	// The link names this server (its public URL), whatever Host the request carried.
	u, _ := url.Parse(link)
	token := u.Query().Get("token")
	visitor := newClient()
	page, err := visitor.Get(base + "/password/reset?token=" + token)
	if err != nil || page.StatusCode != 200 {
		t.Fatalf("reset page: %v %v", page.StatusCode, err)
	}
	page.Body.Close()
	if r := post(visitor, "/password/reset", url.Values{"token": {token}, "new_password": {"a new long passphrase"}}); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin?reset=1" {
		t.Fatalf("reset: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	changed := inbox.next(t)
	if h, text, _ := mailParts(t, changed.Data); h.Get("Subject") != "Your tunelab password was changed" || !strings.Contains(text, "reset with a link") {
		t.Fatalf("password changed mail: %q\n%s", h.Get("Subject"), text)
	}
	// Ada's old session is gone; the new password signs in; the link is spent.
	if r, _ := ada.Get(base + "/settings"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("old session after the reset: %d", r.StatusCode)
	}
	if r := post(newClient(), "/signin", url.Values{"email": {"ada@example.com"}, "password": {"a new long passphrase"}}); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Fatalf("sign in with the new password: %d", r.StatusCode)
	}
	if r := post(newClient(), "/password/reset", url.Values{"token": {token}, "new_password": {"another long passphrase"}}); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("the link works twice: %d", r.StatusCode)
	}
}

func TestMailIsRetriedWithBackoffAndSurvivesRestart(t *testing.T) {
	smtpURL, inbox := startSMTP(t, 2)
	sc, err := parseSMTPURL(smtpURL)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, _ := storetest.OpenDir(t, dir, store.Options{Argon2: storetest.CheapArgon2})
	ctx := context.Background()
	// Queued while no sender runs (a server stopped before sending it).
	id, err := st.EnqueueMail(ctx, store.NewMail{Kind: store.MailPasswordChanged, To: "bob@example.com", Subject: "Héllo", Text: "plain body\n", HTML: "<p>html body</p>"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := newMailSender(st, sc, dir, mail.Address{Address: "noreply@tune.example"}, log)
	m.retryBase = 20 * time.Millisecond
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); m.Run(runCtx) }()
	defer func() { stop(); <-done }()

	got := inbox.next(t)
	h, text, _ := mailParts(t, got.Data)
	if h.Get("Subject") != "=?utf-8?q?H=C3=A9llo?=" || strings.TrimSpace(text) != "plain body" {
		t.Fatalf("subject %q text %q", h.Get("Subject"), text)
	}
	inbox.mu.Lock()
	refused := inbox.refused
	inbox.mu.Unlock()
	if refused != 2 {
		t.Fatalf("server refused %d times, want 2", refused)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		list, _ := st.RecentMail(ctx, 1)
		if len(list) == 1 && list[0].ID == id && !list[0].SentAt.IsZero() {
			if list[0].Attempts != 3 || list[0].Text != "" {
				t.Fatalf("record: %+v", list[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not marked sent: %+v", list)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMailWithoutSMTPLandsInTheOutbox(t *testing.T) {
	dir := t.TempDir()
	addr, _ := startServerWith(t, nil, dir)
	base := "http://" + addr
	r, err := http.PostForm(base+"/signup", url.Values{"email": {"cy@example.com"}, "password": {"an old long passphrase"}, "accept_terms": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r, err = http.PostForm(base+"/password/forgot", url.Values{"email": {"cy@example.com"}}); err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "outbox", "*-password_reset.eml"))
		if len(files) == 1 {
			data, _ := os.ReadFile(files[0])
			if _, text, _ := mailParts(t, data); resetURL.FindString(text) == "" {
				t.Fatalf("no reset link in the outbox file:\n%s", data)
			}
			if info, _ := os.Stat(files[0]); info.Mode().Perm()&0o077 != 0 {
				t.Fatalf("outbox file mode %v", info.Mode())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no outbox file: %v", files)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
