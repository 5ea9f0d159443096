package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"tunelab/store"
)

// The mail sender: it takes due mails from the queue in SQLite and delivers each over SMTP
// (TUNELAB_SMTP_URL) or, without it, as an .eml file in DATA_DIR/outbox. A failed attempt
// is retried with exponential backoff; a mail is marked sent only after the server (or the
// file system) took it, so a crash in between sends it again rather than losing it.

// smtpConfig is a parsed TUNELAB_SMTP_URL.
type smtpConfig struct {
	Implicit bool   // smtps://: TLS from the first byte; smtp://: STARTTLS when offered
	Host     string // host name, for TLS and the AUTH check
	Addr     string // host:port
	Username string
	Password string
	HasAuth  bool
}

// parseSMTPURL reads smtp://[user:pass@]host[:587] or smtps://[user:pass@]host[:465].
func parseSMTPURL(raw string) (*smtpConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	c := &smtpConfig{}
	port := "587"
	switch u.Scheme {
	case "smtp":
	case "smtps":
		c.Implicit, port = true, "465"
	default:
		return nil, fmt.Errorf("scheme %q: use smtp:// or smtps://", u.Scheme)
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return nil, errors.New("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q", p)
		}
		port = p
	}
	c.Addr = net.JoinHostPort(c.Host, port)
	if u.User != nil {
		c.HasAuth = true
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	return c, nil
}

// String names the server without credentials, for logs and the admin page.
func (c *smtpConfig) String() string {
	scheme := "smtp"
	if c.Implicit {
		scheme = "smtps"
	}
	return scheme + "://" + c.Addr
}

type mailSender struct {
	store     *store.Store
	smtp      *smtpConfig // nil: files in outbox
	outbox    string
	from      mail.Address
	log       *slog.Logger
	now       func() time.Time
	retryBase time.Duration  // the first retry's wait; it doubles, up to retryMax
	retryMax  time.Duration  //
	rootCAs   *x509.CertPool // nil: the system's (tests pass their own)
	wake      chan struct{}
}

func newMailSender(st *store.Store, smtpCfg *smtpConfig, dataDir string, from mail.Address, log *slog.Logger) *mailSender {
	return &mailSender{store: st, smtp: smtpCfg, outbox: filepath.Join(dataDir, "outbox"), from: from, log: log,
		now: time.Now, retryBase: 30 * time.Second, retryMax: time.Hour, wake: make(chan struct{}, 1)}
}

// Wake asks the sender to look at the queue now.
func (m *mailSender) Wake() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Mode says where mail goes, for the admin page.
func (m *mailSender) Mode() string {
	if m.smtp != nil {
		return "over SMTP to " + m.smtp.String()
	}
	return "written as .eml files to " + m.outbox + " (no TUNELAB_SMTP_URL)"
}

// Relayed reports whether mail leaves through an SMTP server (not files in the outbox).
func (m *mailSender) Relayed() bool { return m.smtp != nil }

// Run sends due mails until ctx ends, waking for new mail and for the next retry.
func (m *mailSender) Run(ctx context.Context) {
	for {
		m.sendDue(ctx)
		wait := 5 * time.Minute
		if at, ok, err := m.store.NextMailAttempt(ctx); err == nil && ok {
			wait = min(wait, max(at.Sub(m.now()), 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-m.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// sendDue delivers every mail due now, once each.
func (m *mailSender) sendDue(ctx context.Context) {
	for ctx.Err() == nil {
		due, err := m.store.DueMail(ctx, 20)
		if err != nil {
			m.log.Error("mail queue", "err", err)
			return
		}
		if len(due) == 0 {
			return
		}
		for _, ml := range due {
			to, err := m.deliver(ctx, ml)
			if err == nil {
				if err := m.store.MailSent(ctx, ml.ID, to); err != nil {
					m.log.Error("mail sent", "mail", ml.ID, "err", err)
					return
				}
				m.log.Info("mail sent", "mail", ml.ID, "kind", ml.Kind, "to", to)
				continue
			}
			wait := m.retryBase << min(ml.Attempts, 20)
			wait = min(wait, m.retryMax)
			gaveUp, ferr := m.store.MailFailed(ctx, ml.ID, err.Error(), m.now().Add(wait))
			if ferr != nil {
				m.log.Error("mail failed", "mail", ml.ID, "err", ferr)
				return
			}
			m.log.Warn("mail not sent", "mail", ml.ID, "kind", ml.Kind, "attempt", ml.Attempts+1, "retry_in", wait, "gave_up", gaveUp, "err", err)
		}
	}
}

func (m *mailSender) deliver(ctx context.Context, ml store.Mail) (string, error) {
	msg := m.message(ml)
	if m.smtp == nil {
		return m.writeOutbox(ml, msg)
	}
	return "smtp", m.sendSMTP(ctx, ml.To, msg)
}

// writeOutbox writes the mail as DATA_DIR/outbox/<id>-<kind>.eml (whole or not at all).
func (m *mailSender) writeOutbox(ml store.Mail, msg []byte) (string, error) {
	if err := os.MkdirAll(m.outbox, 0o700); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%06d-%s.eml", ml.ID, ml.Kind)
	tmp, err := os.CreateTemp(m.outbox, ".tmp-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(msg); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(m.outbox, name)); err != nil {
		return "", err
	}
	return name, nil
}

func (m *mailSender) sendSMTP(ctx context.Context, to string, msg []byte) error {
	c := m.smtp
	d := net.Dialer{Timeout: 15 * time.Second}
	tlsConf := &tls.Config{ServerName: c.Host, RootCAs: m.rootCAs, MinVersion: tls.VersionTLS12}
	var conn net.Conn
	var err error
	if c.Implicit {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: tlsConf}).DialContext(ctx, "tcp", c.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", c.Addr)
	}
	if err != nil {
		return err
	}
	conn.SetDeadline(m.now().Add(time.Minute))
	client, err := smtp.NewClient(conn, c.Host)
	if err != nil {
		conn.Close()
		return err
	}
	defer client.Close()
	if !c.Implicit {
		if ok, _ := client.Extension("STARTTLS"); ok {
			if err := client.StartTLS(tlsConf); err != nil {
				return err
			}
		}
	}
	if c.HasAuth {
		// net/smtp sends PLAIN only over TLS or to localhost.
		if err := client.Auth(smtp.PlainAuth("", c.Username, c.Password, c.Host)); err != nil {
			return err
		}
	}
	if err := client.Mail(m.from.Address); err != nil {
		return err
	}
	if err := client.Rcpt(to); err != nil {
		return err
	}
	w, err := client.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return client.Quit()
}

// message builds the MIME message: plain text and HTML alternatives, quoted-printable.
func (m *mailSender) message(ml store.Mail) []byte {
	var b bytes.Buffer
	boundary := randomHex(16)
	domain := "tunelab.invalid"
	if _, d, ok := strings.Cut(m.from.Address, "@"); ok {
		domain = d
	}
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", m.from.String())
	hdr("To", (&mail.Address{Address: ml.To}).String())
	hdr("Subject", mime.QEncoding.Encode("utf-8", ml.Subject))
	hdr("Date", ml.CreatedAt.Format(time.RFC1123Z))
	hdr("Message-ID", fmt.Sprintf("<tunelab-mail-%d-%d@%s>", ml.ID, ml.CreatedAt.UnixMilli(), domain))
	hdr("Auto-Submitted", "auto-generated")
	if ml.Unsubscribe != "" {
		// One-click unsubscribe (RFC 8058): the mail client POSTs to the link itself.
		hdr("List-Unsubscribe", "<"+ml.Unsubscribe+">")
		hdr("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	}
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	for _, part := range []struct{ typ, body string }{{"text/plain", ml.Text}, {"text/html", ml.HTML}} {
		b.WriteString("--" + boundary + "\r\n")
		b.WriteString("Content-Type: " + part.typ + "; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		qp := quotedprintable.NewWriter(&b)
		qp.Write([]byte(strings.ReplaceAll(part.body, "\n", "\r\n")))
		qp.Close()
		b.WriteString("\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
