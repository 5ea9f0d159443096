package gpu

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// NewRunToken makes a worker token: 128 random bits, hex-encoded. Only its hash is stored.
func NewRunToken() (token string, hash []byte) {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	token = hex.EncodeToString(b)
	return token, RunTokenHash(token)
}

// RunTokenHash is what runs.token_hash holds for a token: the raw sha256 of its text.
func RunTokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}
