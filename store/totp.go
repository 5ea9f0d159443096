package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// Two-factor sign-in with TOTP (RFC 6238): 6 digits, SHA-1, 30-second steps, a code
// accepted for the step before and after the server's own (never more), and each step's
// code at most once.
const (
	totpIssuer = "tunelab"
	totpPeriod = 30
	totpDigits = otp.DigitsSix
	totpSkew   = 1
	// SeedBytes is the size of a TOTP seed: 160 bits from crypto/rand.
	SeedBytes = 20
	// RecoveryCodeCount is how many recovery codes a person gets at a time.
	RecoveryCodeCount = 10
)

var (
	// ErrBadCode is a TOTP or recovery code that is wrong, expired, or already used.
	ErrBadCode = errors.New("store: the code is not right")
	// ErrTOTPEnabled refuses to start enrolment while two-factor sign-in is on.
	ErrTOTPEnabled = errors.New("store: two-factor sign-in is already on")
	// ErrTOTPOff is returned where two-factor sign-in must be on and is not.
	ErrTOTPOff = errors.New("store: two-factor sign-in is off")
)

// TOTPKey is a seed as an authenticator app takes it.
type TOTPKey struct {
	Secret string // base32, no padding: the manual key
	URL    string // otpauth:// URL (what the QR code holds)
	key    *otp.Key
}

// Key returns the library's key (for its QR image).
func (k TOTPKey) Key() *otp.Key { return k.key }

// TOTPState is whether a person has two-factor sign-in and how many recovery codes remain.
type TOTPState struct {
	Enabled       bool
	Pending       bool // enrolment started, waiting for its first correct code
	RecoveryCodes int  // unused recovery codes
}

func totpPurpose(userID int64) string { return "totp seed of user " + strconv.FormatInt(userID, 10) }

func newTOTPKey(email string, seed []byte) (TOTPKey, error) {
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer: totpIssuer, AccountName: email, Period: totpPeriod, SecretSize: SeedBytes,
		Secret: seed, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPKey{}, err
	}
	return TOTPKey{Secret: k.Secret(), URL: k.URL(), key: k}, nil
}

// TOTPState returns a person's two-factor state.
func (s *Store) TOTPState(ctx context.Context, userID int64) (TOTPState, error) {
	var st TOTPState
	var enabled sql.NullInt64
	err := s.r.QueryRowContext(ctx, "SELECT enabled_at FROM user_totp WHERE user_id = ?", userID).Scan(&enabled)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return st, nil
	case err != nil:
		return st, fmt.Errorf("store: totp state: %w", err)
	}
	st.Enabled, st.Pending = enabled.Valid, !enabled.Valid
	if st.Enabled {
		if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL", userID).Scan(&st.RecoveryCodes); err != nil {
			return st, fmt.Errorf("store: count recovery codes: %w", err)
		}
	}
	return st, nil
}

// BeginTOTP makes a new seed (replacing any unconfirmed one), stores it sealed with the
// vault key, and returns it. Two-factor sign-in is not on until ConfirmTOTP.
func (s *Store) BeginTOTP(ctx context.Context, v *Vault, userID int64, email string) (TOTPKey, error) {
	seed := make([]byte, SeedBytes)
	rand.Read(seed)
	key, err := newTOTPKey(email, seed)
	if err != nil {
		return TOTPKey{}, fmt.Errorf("store: begin totp: %w", err)
	}
	sealed, err := v.SealSecret(totpPurpose(userID), seed)
	if err != nil {
		return TOTPKey{}, err
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO user_totp (user_id, secret_sealed, enabled_at, last_used_step, created_at)
		VALUES (?, ?, NULL, 0, ?)
		ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at
		WHERE user_totp.enabled_at IS NULL`, userID, sealed, ms(s.now()))
	if err != nil {
		return TOTPKey{}, fmt.Errorf("store: begin totp: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return TOTPKey{}, ErrTOTPEnabled
	}
	return key, nil
}

// PendingTOTP returns the unconfirmed seed of an enrolment in progress (ErrNotFound when
// there is none).
func (s *Store) PendingTOTP(ctx context.Context, v *Vault, userID int64, email string) (TOTPKey, error) {
	var sealed []byte
	err := s.r.QueryRowContext(ctx, "SELECT secret_sealed FROM user_totp WHERE user_id = ? AND enabled_at IS NULL", userID).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return TOTPKey{}, ErrNotFound
	}
	if err != nil {
		return TOTPKey{}, fmt.Errorf("store: pending totp: %w", err)
	}
	seed, err := v.OpenSecret(totpPurpose(userID), sealed)
	if err != nil {
		return TOTPKey{}, err
	}
	return newTOTPKey(email, seed)
}

// totpStep is the 30-second step of t.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// matchStep returns the step within ±totpSkew of now whose code is code, newer than
// lastUsed, or false. Every candidate is computed and compared in constant time.
func matchStep(seed []byte, code string, now time.Time, lastUsed int64) (int64, bool) {
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed)
	code = strings.TrimSpace(code)
	var found int64
	ok := false
	cur := totpStep(now)
	for step := cur - totpSkew; step <= cur+totpSkew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totp.ValidateOpts{
			Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > lastUsed && !ok {
			found, ok = step, true
		}
	}
	return found, ok
}

// checkTOTP verifies code against the seed of userID (pending or enabled, as asked) and
// records its step as used, in one transaction: a code, or an older one, never passes twice.
func (s *Store) checkTOTP(tx *sql.Tx, v *Vault, userID int64, code string, pending bool) error {
	var sealed []byte
	var lastUsed int64
	var enabled sql.NullInt64
	err := tx.QueryRow("SELECT secret_sealed, last_used_step, enabled_at FROM user_totp WHERE user_id = ?", userID).Scan(&sealed, &lastUsed, &enabled)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && enabled.Valid == pending) {
		if pending {
			return ErrNotFound
		}
		return ErrTOTPOff
	}
	if err != nil {
		return fmt.Errorf("store: check totp: %w", err)
	}
	seed, err := v.OpenSecret(totpPurpose(userID), sealed)
	if err != nil {
		return err
	}
	step, ok := matchStep(seed, code, s.now(), lastUsed)
	if !ok {
		return ErrBadCode
	}
	if _, err := tx.Exec("UPDATE user_totp SET last_used_step = ? WHERE user_id = ?", step, userID); err != nil {
		return fmt.Errorf("store: check totp: %w", err)
	}
	return nil
}

// ConfirmTOTP turns two-factor sign-in on once code is right for the pending seed, and
// returns the new recovery codes (shown once; only their hashes are kept).
func (s *Store) ConfirmTOTP(ctx context.Context, v *Vault, userID int64, code string) ([]string, error) {
	var codes []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkTOTP(tx, v, userID, code, true); err != nil {
			return err
		}
		if _, err := tx.Exec("UPDATE user_totp SET enabled_at = ? WHERE user_id = ?", ms(s.now()), userID); err != nil {
			return fmt.Errorf("store: confirm totp: %w", err)
		}
		var err error
		codes, err = s.replaceRecoveryCodes(tx, userID)
		return err
	})
	return codes, err
}

// VerifyTOTP checks a code of a person with two-factor sign-in on and spends its step.
func (s *Store) VerifyTOTP(ctx context.Context, v *Vault, userID int64, code string) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.checkTOTP(tx, v, userID, code, false) })
}

// DisableTOTP turns two-factor sign-in off after a correct code (the caller has checked
// the password): the seed and the recovery codes are deleted.
func (s *Store) DisableTOTP(ctx context.Context, v *Vault, userID int64, code string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkTOTP(tx, v, userID, code, false); err != nil {
			return err
		}
		if _, err := tx.Exec("DELETE FROM recovery_codes WHERE user_id = ?", userID); err != nil {
			return fmt.Errorf("store: disable totp: %w", err)
		}
		if _, err := tx.Exec("DELETE FROM user_totp WHERE user_id = ?", userID); err != nil {
			return fmt.Errorf("store: disable totp: %w", err)
		}
		return nil
	})
}

// RegenerateRecoveryCodes replaces every recovery code after a correct TOTP code.
func (s *Store) RegenerateRecoveryCodes(ctx context.Context, v *Vault, userID int64, code string) ([]string, error) {
	var codes []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.checkTOTP(tx, v, userID, code, false); err != nil {
			return err
		}
		var err error
		codes, err = s.replaceRecoveryCodes(tx, userID)
		return err
	})
	return codes, err
}

// recoveryEncoding writes recovery codes; they are read case-insensitively, and dashes
// or spaces are ignored.
var recoveryEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newRecoveryCode returns 120 random bits as 24 base32 characters in groups of four.
func newRecoveryCode() string {
	b := make([]byte, 15)
	rand.Read(b)
	s := strings.ToLower(recoveryEncoding.EncodeToString(b))
	var parts []string
	for i := 0; i < len(s); i += 4 {
		parts = append(parts, s[i:i+4])
	}
	return strings.Join(parts, "-")
}

// NormalizeRecoveryCode removes dashes and spaces and upper-cases; it returns "" for
// anything that cannot be a recovery code.
func NormalizeRecoveryCode(code string) string {
	c := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(code)))
	if len(c) != 24 {
		return ""
	}
	if _, err := recoveryEncoding.DecodeString(c); err != nil {
		return ""
	}
	return c
}

func recoveryHash(normalized string) []byte {
	h := sha256.Sum256([]byte("tunelab recovery code\x00" + normalized))
	return h[:]
}

func (s *Store) replaceRecoveryCodes(tx *sql.Tx, userID int64) ([]string, error) {
	if _, err := tx.Exec("DELETE FROM recovery_codes WHERE user_id = ?", userID); err != nil {
		return nil, fmt.Errorf("store: replace recovery codes: %w", err)
	}
	codes := make([]string, RecoveryCodeCount)
	for i := range codes {
		codes[i] = newRecoveryCode()
		if _, err := tx.Exec("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)",
			userID, recoveryHash(NormalizeRecoveryCode(codes[i])), ms(s.now())); err != nil {
			return nil, fmt.Errorf("store: replace recovery codes: %w", err)
		}
	}
	return codes, nil
}

// UseRecoveryCode spends one unused recovery code of a person with two-factor sign-in on.
func (s *Store) UseRecoveryCode(ctx context.Context, userID int64, code string) error {
	c := NormalizeRecoveryCode(code)
	if c == "" {
		return ErrBadCode
	}
	res, err := s.w.ExecContext(ctx, `UPDATE recovery_codes SET used_at = ?
		WHERE user_id = ? AND code_hash = ? AND used_at IS NULL
		AND EXISTS (SELECT 1 FROM user_totp WHERE user_id = ? AND enabled_at IS NOT NULL)`,
		ms(s.now()), userID, recoveryHash(c), userID)
	if err != nil {
		return fmt.Errorf("store: use recovery code: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrBadCode
	}
	return nil
}
