package store

import (
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
