package store

import (
	"context"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

func gobSession(t *testing.T, values map[string]any) []byte {
	t.Helper()
	b, err := (scs.GobCodec{}).Encode(time.Now().Add(time.Hour), values)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// passwordHash returns the stored hash; tests use it to see re-hashing happen.
func (s *Store) passwordHash(ctx context.Context, userID int64) (string, error) {
	var h string
	err := s.r.QueryRowContext(ctx, "SELECT password_hash FROM users WHERE id = ?", userID).Scan(&h)
	return h, err
}
