package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tunelab/store"
)

// TestAdminRotateKeyCommand: the command needs both keys, rewrites the vault under the new
// one, and the new key alone then reads the file.
func TestAdminRotateKeyCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	oldKey, newKey := bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{4}, 32)
	st, err := store.Open(ctx, dbPath(dir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	oldV, _ := store.NewVault(filepath.Join(dir, "files"), oldKey)
	w, _ := oldV.Create()
	w.Write([]byte("weights"))
	id, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TUNELAB_SECRET_KEY": base64.StdEncoding.EncodeToString(newKey)}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	if err := run(ctx, []string{"admin", "rotate-key", "--data", dir}, getenv, strings.NewReader(""), &out); err == nil || !strings.Contains(err.Error(), "TUNELAB_OLD_SECRET_KEY") {
		t.Fatalf("without the old key: %v", err)
	}
	env["TUNELAB_OLD_SECRET_KEY"] = base64.StdEncoding.EncodeToString(oldKey)
	if err := run(ctx, []string{"admin", "rotate-key", "--data", dir}, getenv, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "done: 1 of 1 files") {
		t.Fatalf("output: %s", out.String())
	}
	newV, _ := store.NewVault(filepath.Join(dir, "files"), newKey)
	r, err := newV.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "weights" {
		t.Fatalf("read %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "files", id)); err != nil {
		t.Fatal(err)
	}
}
