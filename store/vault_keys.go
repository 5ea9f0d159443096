package store

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// DeriveKey returns a 32-byte key for one purpose (cookie signing, unsubscribe links),
// derived from the server's secret key with HKDF-SHA256: a key for one purpose says
// nothing about the secret or about another purpose's key.
func (v *Vault) DeriveKey(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, v.master, nil, "tunelab derived key v1: "+purpose, 32)
	if err != nil {
		panic("store: derive key: " + err.Error()) // only for lengths HKDF cannot make
	}
	return k
}
