package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Consent purposes and where a decision came from.
const (
	PurposeNecessary = "necessary"
	PurposeAnalytics = "analytics"

	ConsentFromBanner     = "banner"
	ConsentFromSettings   = "settings"
	ConsentFromWithdrawal = "withdrawal"
	ConsentFromGPC        = "gpc"
)

// ConsentSources lists every source a consent record may name.
var ConsentSources = []string{ConsentFromBanner, ConsentFromSettings, ConsentFromWithdrawal, ConsentFromGPC}

// ConsentRecord is one decision about cookies, kept as proof (no IP, no user agent).
type ConsentRecord struct {
	ID            string
	CreatedAt     time.Time
	BannerVersion string
	TextVersion   string
	Analytics     bool // granted; false: denied
	Source        string
	PreviousID    string
	UserID        int64 // 0: not signed in
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// RecordConsent appends a decision and returns it with its id and time.
func (s *Store) RecordConsent(ctx context.Context, c ConsentRecord) (ConsentRecord, error) {
	valid := false
	for _, src := range ConsentSources {
		valid = valid || src == c.Source
	}
	if !valid || c.BannerVersion == "" || c.TextVersion == "" {
		return ConsentRecord{}, fmt.Errorf("store: record consent: source %q or versions missing", c.Source)
	}
	c.ID, c.CreatedAt = newUUID(), s.now().UTC().Truncate(time.Millisecond)
	granted, denied := []string{PurposeNecessary}, []string{}
	if c.Analytics {
		granted = append(granted, PurposeAnalytics)
	} else {
		denied = append(denied, PurposeAnalytics)
	}
	var uid sql.NullInt64
	if c.UserID != 0 {
		uid = sql.NullInt64{Int64: c.UserID, Valid: true}
	}
	var prev sql.NullString
	if c.PreviousID != "" {
		prev = sql.NullString{String: clip(c.PreviousID, 64), Valid: true}
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO consent_records
		(id, created_at, banner_version, text_version, granted, denied, source, previous_id, user_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, ms(c.CreatedAt), c.BannerVersion, c.TextVersion,
		strings.Join(granted, ","), strings.Join(denied, ","), c.Source, prev, uid)
	if err != nil {
		return ConsentRecord{}, fmt.Errorf("store: record consent: %w", err)
	}
	return c, nil
}

const consentColumns = `id, created_at, banner_version, text_version, granted, source, COALESCE(previous_id, ''), COALESCE(user_id, 0)`

func scanConsent(row interface{ Scan(...any) error }) (ConsentRecord, error) {
	var c ConsentRecord
	var created int64
	var granted string
	if err := row.Scan(&c.ID, &created, &c.BannerVersion, &c.TextVersion, &granted, &c.Source, &c.PreviousID, &c.UserID); err != nil {
		return ConsentRecord{}, err
	}
	c.CreatedAt = fromMS(created)
	for _, p := range strings.Split(granted, ",") {
		c.Analytics = c.Analytics || p == PurposeAnalytics
	}
	return c, nil
}

// AccountConsent is the newest decision recorded for an account, or ErrNotFound.
func (s *Store) AccountConsent(ctx context.Context, userID int64) (ConsentRecord, error) {
	c, err := scanConsent(s.r.QueryRowContext(ctx, "SELECT "+consentColumns+
		" FROM consent_records WHERE user_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1", userID))
	if errors.Is(err, sql.ErrNoRows) {
		return ConsentRecord{}, ErrNotFound
	}
	if err != nil {
		return ConsentRecord{}, fmt.Errorf("store: account consent: %w", err)
	}
	return c, nil
}

// ConsentByID returns one decision, or ErrNotFound.
func (s *Store) ConsentByID(ctx context.Context, id string) (ConsentRecord, error) {
	c, err := scanConsent(s.r.QueryRowContext(ctx, "SELECT "+consentColumns+" FROM consent_records WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return ConsentRecord{}, ErrNotFound
	}
	if err != nil {
		return ConsentRecord{}, fmt.Errorf("store: consent by id: %w", err)
	}
	return c, nil
}

// LinkConsent puts an anonymous decision on the account that has just signed in, so the
// choice follows the person to other browsers. A decision already on an account stays there.
func (s *Store) LinkConsent(ctx context.Context, id string, userID int64) error {
	_, err := s.w.ExecContext(ctx, "UPDATE consent_records SET user_id = ? WHERE id = ? AND user_id IS NULL", userID, id)
	if err != nil {
		return fmt.Errorf("store: link consent: %w", err)
	}
	return nil
}
