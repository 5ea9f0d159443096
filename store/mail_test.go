package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMailQueueRetriesAndWipesBodies(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s, path := openTest(t, Options{Argon2: cheapArgon2, Now: func() time.Time { return now }})
	ctx := context.Background()
	id, err := s.EnqueueMail(ctx, NewMail{Kind: MailPasswordReset, To: "a@example.com", Subject: "Reset", Text: "secret link", HTML: "<p>secret link</p>"})
	if err != nil {
		t.Fatal(err)
	}
	due, _ := s.DueMail(ctx, 10)
	if len(due) != 1 || due[0].ID != id || due[0].Text != "secret link" {
		t.Fatalf("due: %+v", due)
	}
	if gaveUp, err := s.MailFailed(ctx, id, "connection refused", now.Add(time.Minute)); err != nil || gaveUp {
		t.Fatalf("failed: %v %v", gaveUp, err)
	}
	if due, _ := s.DueMail(ctx, 10); len(due) != 0 {
		t.Fatal("a failed mail is due again before its retry time")
	}
	if at, ok, _ := s.NextMailAttempt(ctx); !ok || !at.Equal(now.Add(time.Minute)) {
		t.Fatalf("next attempt %v %v", at, ok)
	}
	// Nothing is lost on a restart: a new store over the same file still has it.
	s.Close()
	s2, err := Open(ctx, path, Options{Argon2: cheapArgon2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	now = now.Add(time.Minute)
	due, _ = s2.DueMail(ctx, 10)
	if len(due) != 1 || due[0].Attempts != 1 || due[0].LastError != "connection refused" {
		t.Fatalf("after restart: %+v", due)
	}
	if err := s2.MailSent(ctx, id, "smtp"); err != nil {
		t.Fatal(err)
	}
	list, _ := s2.RecentMail(ctx, 10)
	if len(list) != 1 || list[0].SentAt.IsZero() || list[0].Text != "" || list[0].HTML != "" || list[0].DeliveredTo != "smtp" {
		t.Fatalf("sent mail keeps its body or lacks its record: %+v", list)
	}
	if _, ok, _ := s2.NextMailAttempt(ctx); ok {
		t.Fatal("a sent mail is still waiting")
	}
	// Given up after MailMaxAttempts.
	id2, _ := s2.EnqueueMail(ctx, NewMail{Kind: MailPasswordChanged, To: "a@example.com", Subject: "s", Text: "t", HTML: "h"})
	for i := 1; i <= MailMaxAttempts; i++ {
		gaveUp, err := s2.MailFailed(ctx, id2, "no", now)
		if err != nil || gaveUp != (i == MailMaxAttempts) {
			t.Fatalf("attempt %d: %v %v", i, gaveUp, err)
		}
	}
	if due, _ := s2.DueMail(ctx, 10); len(due) != 0 {
		t.Fatal("a given-up mail is still due")
	}
	// Records leave after the telemetry retention; a waiting mail stays.
	id3, _ := s2.EnqueueMail(ctx, NewMail{Kind: MailPasswordChanged, To: "a@example.com", Subject: "s", Text: "t", HTML: "h"})
	now = now.Add(TelemetryRetention + time.Hour)
	if n, err := s2.PurgeMailAndLinks(ctx); err != nil || n != 2 {
		t.Fatalf("purged %d: %v", n, err)
	}
	if list, _ := s2.RecentMail(ctx, 10); len(list) != 1 || list[0].ID != id3 {
		t.Fatalf("left: %+v", list)
	}
}

func TestPasswordResetTokens(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s, _ := openTest(t, Options{Argon2: cheapArgon2, Now: func() time.Time { return now }})
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, NewUser{Email: "r@example.com", Password: "first long passphrase", TermsVersion: "v"})
	if got, err := s.UserByEmail(ctx, " R@Example.com "); err != nil || got.ID != u.ID {
		t.Fatalf("by email: %v", err)
	}
	if _, err := s.UserByEmail(ctx, "nobody@example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown email: %v", err)
	}
	tok, err := s.CreatePasswordReset(ctx, u.ID)
	if err != nil || len(tok) < 43 {
		t.Fatalf("token %q %v", tok, err)
	}
	var stored int
	s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM password_resets WHERE token_hash = ?", tok).Scan(&stored)
	if stored != 0 {
		t.Fatal("the token is stored as is")
	}
	other, _ := s.CreatePasswordReset(ctx, u.ID)
	if _, err := s.ResetPassword(ctx, "wrong"+tok, "second long passphrase"); !errors.Is(err, ErrResetInvalid) {
		t.Fatalf("wrong token: %v", err)
	}
	var verr *ValidationError
	if _, err := s.ResetPassword(ctx, tok, "password"); !errors.As(err, &verr) || verr.Fields["new_password"] == "" {
		t.Fatalf("weak password: %v", err)
	}
	// A session of the account ends with the reset.
	s.w.ExecContext(ctx, "INSERT INTO sessions (token_hash, data, expiry, user_id) VALUES (?, ?, ?, ?)", []byte("h"), []byte{}, ms(now.Add(time.Hour)), u.ID)
	if n, _ := s.CountUserSessions(ctx, u.ID); n != 1 {
		t.Fatalf("%d sessions before the reset", n)
	}
	if _, err := s.ResetPassword(ctx, tok, "second long passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "r@example.com", "second long passphrase"); err != nil {
		t.Fatal("new password refused")
	}
	if n, _ := s.CountUserSessions(ctx, u.ID); n != 0 {
		t.Fatalf("%d sessions left after a reset", n)
	}
	if _, err := s.ResetPassword(ctx, tok, "third long passphrase"); !errors.Is(err, ErrResetInvalid) {
		t.Fatalf("used token: %v", err)
	}
	if _, err := s.ResetPassword(ctx, other, "third long passphrase"); !errors.Is(err, ErrResetInvalid) {
		t.Fatalf("the account's other token survived the reset: %v", err)
	}
	late, _ := s.CreatePasswordReset(ctx, u.ID)
	now = now.Add(PasswordResetTTL)
	if _, err := s.PasswordResetUser(ctx, late); !errors.Is(err, ErrResetInvalid) {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := s.ResetPassword(ctx, late, "third long passphrase"); !errors.Is(err, ErrResetInvalid) || strings.Contains(err.Error(), "third") {
		t.Fatalf("expired token: %v", err)
	}
}

func TestEmailVerificationTokens(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s, _ := openTest(t, Options{Argon2: cheapArgon2, Now: func() time.Time { return now }})
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, NewUser{Email: "v@example.com", Password: "first long passphrase", TermsVersion: "v"})
	if ok, err := s.EmailVerified(ctx, u.ID); ok || err != nil {
		t.Fatalf("new account verified: %v %v", ok, err)
	}
	tok, err := s.CreateEmailVerification(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyEmail(ctx, "nope"); !errors.Is(err, ErrVerifyInvalid) {
		t.Fatalf("wrong token: %v", err)
	}
	if got, err := s.EmailVerificationUser(ctx, tok); err != nil || got.ID != u.ID {
		t.Fatalf("lookup: %v", err)
	}
	if _, err := s.VerifyEmail(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.EmailVerified(ctx, u.ID); !ok {
		t.Fatal("not verified")
	}
	if _, err := s.VerifyEmail(ctx, tok); !errors.Is(err, ErrVerifyInvalid) {
		t.Fatalf("used token: %v", err)
	}
	late, _ := s.CreateEmailVerification(ctx, u.ID)
	now = now.Add(EmailVerificationTTL)
	if _, err := s.VerifyEmail(ctx, late); !errors.Is(err, ErrVerifyInvalid) {
		t.Fatalf("expired token: %v", err)
	}
}
