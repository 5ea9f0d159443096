package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SessionDevice is what a person sees of one of their signed-in sessions.
type SessionDevice struct {
	ID        int64
	UserAgent string
	IP        string
	CreatedAt time.Time
	LastSeen  time.Time
	Current   bool // the session of the request that asked
}

// deviceTouchEvery is how often a session's last-seen time and address are rewritten.
const deviceTouchEvery = time.Minute

// maxUserAgent bounds what is kept of a user agent.
const maxUserAgent = 512

// TouchSessionDevice records that the session with token, signed in as userID, was seen
// now from ip with userAgent. A session seen less than a minute ago from the same address
// costs one read and no write.
func (s *Store) TouchSessionDevice(ctx context.Context, token string, userID int64, userAgent, ip string) error {
	if len(userAgent) > maxUserAgent {
		userAgent = userAgent[:maxUserAgent]
	}
	now := s.now()
	var lastSeen, owner int64
	var lastIP string
	err := s.r.QueryRowContext(ctx, "SELECT last_seen, ip, user_id FROM session_devices WHERE token_hash = ?", tokenHash(token)).Scan(&lastSeen, &lastIP, &owner)
	if err == nil && owner == userID && lastIP == ip && ms(now)-lastSeen < deviceTouchEvery.Milliseconds() {
		return nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: touch session device: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO session_devices (token_hash, user_id, user_agent, ip, created_at, last_seen)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (token_hash) DO UPDATE SET last_seen = excluded.last_seen, ip = excluded.ip,
			user_agent = excluded.user_agent,
			created_at = CASE WHEN session_devices.user_id = excluded.user_id THEN session_devices.created_at ELSE excluded.created_at END,
			user_id = excluded.user_id`,
		tokenHash(token), userID, userAgent, ip, ms(now), ms(now))
	if err != nil {
		return fmt.Errorf("store: touch session device: %w", err)
	}
	return nil
}

// ListSessionDevices returns a person's unexpired sessions: the one whose token is
// currentToken first (marked Current), then the most recently seen.
func (s *Store) ListSessionDevices(ctx context.Context, userID int64, currentToken string) ([]SessionDevice, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT d.id, d.user_agent, d.ip, d.created_at, d.last_seen, d.token_hash = ?
		FROM session_devices d JOIN sessions s ON s.token_hash = d.token_hash AND s.user_id = d.user_id
		WHERE d.user_id = ? AND s.expiry > ?
		ORDER BY d.token_hash = ? DESC, d.last_seen DESC, d.id DESC`, tokenHash(currentToken), userID, ms(s.now()), tokenHash(currentToken))
	if err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	defer rows.Close()
	var out []SessionDevice
	for rows.Next() {
		var d SessionDevice
		var created, seen int64
		if err := rows.Scan(&d.ID, &d.UserAgent, &d.IP, &created, &seen, &d.Current); err != nil {
			return nil, fmt.Errorf("store: list sessions: %w", err)
		}
		d.CreatedAt, d.LastSeen = fromMS(created), fromMS(seen)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	return out, nil
}

// RevokeSession ends one of userID's sessions by its device id: the scs session is deleted,
// so its browser is signed out at its next request. Another person's id is ErrNotFound.
func (s *Store) RevokeSession(ctx context.Context, userID, id int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var hash []byte
		err := tx.QueryRow(`SELECT d.token_hash FROM session_devices d JOIN sessions s ON s.token_hash = d.token_hash AND s.user_id = d.user_id
			WHERE d.id = ? AND d.user_id = ?`, id, userID).Scan(&hash)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("store: revoke session: %w", err)
		}
		if _, err := tx.Exec("DELETE FROM sessions WHERE token_hash = ? AND user_id = ?", hash, userID); err != nil {
			return fmt.Errorf("store: revoke session: %w", err)
		}
		if _, err := tx.Exec("DELETE FROM session_devices WHERE id = ?", id); err != nil {
			return fmt.Errorf("store: revoke session: %w", err)
		}
		return nil
	})
}

// SessionIsCurrent reports whether device id is the session whose token is token.
func (s *Store) SessionIsCurrent(ctx context.Context, userID, id int64, token string) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM session_devices WHERE id = ? AND user_id = ? AND token_hash = ?", id, userID, tokenHash(token)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("store: session is current: %w", err)
	}
	return n == 1, nil
}

// deleteOrphanDevices removes the device rows of sessions that ended (signed out, revoked,
// expired) more than a minute ago; a session just signed in may have its device row before
// its session row, so recent rows stay.
func (s *Store) deleteOrphanDevices(ctx context.Context) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM session_devices WHERE last_seen < ?
		AND token_hash NOT IN (SELECT token_hash FROM sessions)`, ms(s.now().Add(-deviceTouchEvery)))
	if err != nil {
		return fmt.Errorf("store: delete ended session devices: %w", err)
	}
	return nil
}
