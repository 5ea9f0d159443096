package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"tunelab/store"
)

// Key rotation (README "Encryption at rest"): restart the server with the new key in
// TUNELAB_SECRET_KEY and the old one in TUNELAB_OLD_SECRET_KEY, run
// `tunelab admin rotate-key` with the same two variables while it serves, and when it says
// done, restart without the old key.

// withOldKey lets the server read what the old key wrote while a rotation runs.
func withOldKey(v *store.Vault, cfg config, log *slog.Logger) error {
	if cfg.OldSecretKey == "" {
		return nil
	}
	old, err := decodeKey(cfg.OldSecretKey)
	if err != nil {
		return fmt.Errorf("TUNELAB_OLD_SECRET_KEY: %w", err)
	}
	if err := v.WithOldKey(old); err != nil {
		return err
	}
	log.Info("reading with the old secret key too, until `tunelab admin rotate-key` finishes", "old_key_id", store.KeyID(old))
	return nil
}

// runRotateKey is `tunelab admin rotate-key [--data DIR]`.
func runRotateKey(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("admin rotate-key", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	data := dataDirFlag(fs)
	if err := fs.Parse(args); err != nil {
		return errors.New("admin rotate-key: usage: tunelab admin rotate-key [--data DIR] (keys in TUNELAB_SECRET_KEY and TUNELAB_OLD_SECRET_KEY)")
	}
	newKey, err := decodeKey(getenv("TUNELAB_SECRET_KEY"))
	if err != nil {
		return fmt.Errorf("admin rotate-key: TUNELAB_SECRET_KEY (the new key): %w", err)
	}
	oldKey, err := decodeKey(getenv("TUNELAB_OLD_SECRET_KEY"))
	if err != nil {
		return fmt.Errorf("admin rotate-key: TUNELAB_OLD_SECRET_KEY (the key being replaced): %w", err)
	}
	dir := resolveDataDir(*data, getenv)
	v, err := store.NewVault(filepath.Join(dir, "files"), newKey)
	if err != nil {
		return err
	}
	if err := v.WithOldKey(oldKey); err != nil {
		return fmt.Errorf("admin rotate-key: %w", err)
	}
	st, err := store.Open(ctx, dbPath(dir), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := st.RotateKey(ctx, v, store.RotateOptions{})
	if err != nil {
		return fmt.Errorf("admin rotate-key: stopped (run it again to finish): %w", err)
	}
	fmt.Fprintf(stdout, "done: %d of %d files and %d secrets rewritten under key %s; restart the server without TUNELAB_OLD_SECRET_KEY\n",
		rep.Files, rep.Total, rep.Secrets, store.KeyID(newKey))
	return nil
}
