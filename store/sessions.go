package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/alexedwards/scs/v2"
)

// SessionUserKey is the scs key under which handlers keep the signed-in user's id; the
// session store reads it so a person's sessions can be listed and revoked.
const SessionUserKey = "user_id"

// Sessions is an scs.Store on the sessions table. Tokens are stored as SHA-256 hashes;
// reads go to the reader pool, writes through the single writer.
type Sessions struct{ s *Store }

// Sessions returns the scs store of this database.
func (s *Store) Sessions() *Sessions { return &Sessions{s: s} }

var _ scs.Store = (*Sessions)(nil)

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Find returns the data of an unexpired session.
func (ss *Sessions) Find(token string) ([]byte, bool, error) {
	var b []byte
	err := ss.s.r.QueryRow("SELECT data FROM sessions WHERE token_hash = ? AND expiry > ?",
		tokenHash(token), ms(ss.s.now())).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: find session: %w", err)
	}
	return b, true, nil
}

// sessionTouchSlack is how far the idle expiry may move on before Commit rewrites an
// otherwise unchanged session.
const sessionTouchSlack = time.Minute

// Commit stores (or replaces) a session, noting whose it is. With an idle timeout scs
// commits on every request only to move the expiry on; an unchanged session whose stored
// expiry is less than sessionTouchSlack behind is left as it is, so a page view costs a
// read instead of a synchronous write. An idle session may then end up to that much
// early, never late.
func (ss *Sessions) Commit(token string, b []byte, expiry time.Time) error {
	var old []byte
	var oldExpiry int64
	err := ss.s.r.QueryRow("SELECT data, expiry FROM sessions WHERE token_hash = ?", tokenHash(token)).Scan(&old, &oldExpiry)
	if err == nil && bytes.Equal(old, b) && ms(expiry) >= oldExpiry && ms(expiry)-oldExpiry < sessionTouchSlack.Milliseconds() {
		return nil
	}
	var userID sql.NullInt64
	if _, values, err := (scs.GobCodec{}).Decode(b); err == nil {
		if id, ok := values[SessionUserKey].(int64); ok {
			userID = sql.NullInt64{Int64: id, Valid: true}
		}
	}
	// A token whose session ended (signed out, revoked, renewed) is never stored again, even
	// by a request that started before the end and commits after it.
	_, err = ss.s.w.Exec(`INSERT INTO sessions (token_hash, data, expiry, user_id) SELECT ?, ?, ?, ?
		WHERE NOT EXISTS (SELECT 1 FROM ended_sessions WHERE token_hash = ?)
		ON CONFLICT (token_hash) DO UPDATE SET data = excluded.data, expiry = excluded.expiry, user_id = excluded.user_id`,
		tokenHash(token), b, ms(expiry), userID, tokenHash(token))
	if err != nil {
		return fmt.Errorf("store: commit session: %w", err)
	}
	return nil
}

// Delete removes a session.
func (ss *Sessions) Delete(token string) error {
	if _, err := ss.s.w.Exec("DELETE FROM sessions WHERE token_hash = ?", tokenHash(token)); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions signs a person out everywhere except the session whose token is
// keepToken (empty: everywhere). It returns how many sessions ended.
func (s *Store) DeleteUserSessions(ctx context.Context, userID int64, keepToken string) (int64, error) {
	res, err := s.w.ExecContext(ctx, "DELETE FROM sessions WHERE user_id = ? AND token_hash <> ?", userID, tokenHash(keepToken))
	if err != nil {
		return 0, fmt.Errorf("store: delete user sessions: %w", err)
	}
	return res.RowsAffected()
}

// CountUserSessions returns how many unexpired sessions a person has.
func (s *Store) CountUserSessions(ctx context.Context, userID int64) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM sessions WHERE user_id = ? AND expiry > ?", userID, ms(s.now())).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count sessions: %w", err)
	}
	return n, nil
}

// DeleteExpiredSessions removes sessions past their expiry.
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	res, err := s.w.ExecContext(ctx, "DELETE FROM sessions WHERE expiry <= ?", ms(s.now()))
	if err != nil {
		return 0, fmt.Errorf("store: delete expired sessions: %w", err)
	}
	if err := s.deleteOrphanDevices(ctx); err != nil {
		return 0, err
	}
	if _, err := s.w.ExecContext(ctx, "DELETE FROM ended_sessions WHERE expiry <= ?", ms(s.now())); err != nil {
		return 0, fmt.Errorf("store: delete ended session tokens: %w", err)
	}
	return res.RowsAffected()
}
