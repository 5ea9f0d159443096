package store

import (
	"context"
	"fmt"
)

// MailNewDevice is the kind of the "sign-in from a new device" mail.
const MailNewDevice = "new_device"

// NoteSignInDevice records that the account signed in from device (a browser family and
// an address prefix) and says whether that device is new to an account that had signed
// in before. The first device an account is seen with is never "new": it is where the
// account was made (or, for accounts older than this record, where it first signs in).
func (s *Store) NoteSignInDevice(ctx context.Context, userID int64, device string) (isNew bool, err error) {
	now := ms(s.now())
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: note sign-in device: %w", err)
	}
	defer tx.Rollback()
	var known, seen int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(device = ?), 0) FROM sign_in_devices WHERE user_id = ?`,
		clip(device, 200), userID).Scan(&known, &seen); err != nil {
		return false, fmt.Errorf("store: note sign-in device: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sign_in_devices (user_id, device, first_seen, last_seen) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, device) DO UPDATE SET last_seen = excluded.last_seen`, userID, clip(device, 200), now, now); err != nil {
		return false, fmt.Errorf("store: note sign-in device: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: note sign-in device: %w", err)
	}
	return known > 0 && seen == 0, nil
}
