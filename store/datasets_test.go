package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateDatasetStoresEncryptedAndScoped(t *testing.T) {
	s, _ := openTest(t, Options{Argon2: cheapArgon2})
	v, dir := testVault(t)
	ctx := context.Background()
	ada, _ := s.CreateUser(ctx, NewUser{Email: "ada@example.com", Password: "dataset passphrase", TermsVersion: "v"})
	bob, _ := s.CreateUser(ctx, NewUser{Email: "bob@example.com", Password: "dataset passphrase", TermsVersion: "v"})

	body := "\xef\xbb\xbf" + strings.Join(rows(chatRow, 12), "\r\n") + "\r\n"
	d, err := s.CreateDataset(ctx, v, NewDataset{UserID: ada.ID, Name: "  ../../etc/passwd  ", Content: strings.NewReader(body), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != FormatChat || d.Rows != 12 || d.SizeBytes != int64(len(body)) || d.Tokens <= 0 || d.Name != "../../etc/passwd" {
		t.Fatalf("dataset = %+v", d)
	}
	if sum(d.Histogram) != 12 || len(d.Histogram) != len(LengthBuckets)+1 {
		t.Fatalf("histogram %v", d.Histogram)
	}
	// The file is stored under the server's id, encrypted, and nowhere else.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != d.FileID {
		t.Fatalf("vault holds %v", entries)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, d.FileID))
	if bytes.Contains(raw, []byte("Question")) {
		t.Fatal("dataset stored in plaintext")
	}
	preview, err := DatasetPreview(v, d, 3)
	if err != nil || len(preview) != 3 || preview[0] != chatRow(0) {
		t.Fatalf("preview %q, %v", preview, err)
	}

	got, err := s.Dataset(ctx, ada.ID, d.ID)
	if err != nil || got.FileID != d.FileID || sum(got.Histogram) != 12 {
		t.Fatalf("owner read: %+v %v", got, err)
	}
	if _, err := s.Dataset(ctx, bob.ID, d.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another user read it: %v", err)
	}
	if err := s.DeleteDataset(ctx, bob.ID, d.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another user deleted it: %v", err)
	}
	if list, _ := s.Datasets(ctx, bob.ID); len(list) != 0 {
		t.Fatal("another user lists it")
	}
	if err := s.DeleteDataset(ctx, ada.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.Datasets(ctx, ada.ID); len(list) != 0 {
		t.Fatal("a deleted dataset is still listed")
	}
	if _, err := s.Dataset(ctx, ada.ID, d.ID); !errors.Is(err, ErrNotFound) {
		t.Fatal("a deleted dataset is still readable")
	}
}

func TestCreateDatasetRefusalsLeaveNothing(t *testing.T) {
	s, _ := openTest(t, Options{Argon2: cheapArgon2})
	v, dir := testVault(t)
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, NewUser{Email: "u@example.com", Password: "dataset passphrase", TermsVersion: "v"})
	good := strings.Join(rows(completionRow, 10), "\n") + "\n"
	cases := []struct {
		name    string
		body    string
		max     int64
		wantErr func(error) bool
	}{
		{"invalid line", withBadLine(completionRow, "{oops"), 1 << 20, func(err error) bool {
			var inv *DatasetInvalidError
			return errors.As(err, &inv) && inv.Report.Errors[0].Line == 4
		}},
		{"over the size cap", good, int64(len(good)) - 1, func(err error) bool { return errors.Is(err, ErrDatasetTooLarge) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateDataset(ctx, v, NewDataset{UserID: u.ID, Content: strings.NewReader(tc.body), MaxSize: tc.max})
			if !tc.wantErr(err) {
				t.Fatalf("err = %v", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("a refused upload left %d files", len(entries))
			}
			if list, _ := s.Datasets(ctx, u.ID); len(list) != 0 {
				t.Fatal("a refused upload left a row")
			}
		})
	}
	// Exactly at the cap is accepted.
	if _, err := s.CreateDataset(ctx, v, NewDataset{UserID: u.ID, Content: strings.NewReader(good), MaxSize: int64(len(good))}); err != nil {
		t.Fatalf("file exactly at the cap: %v", err)
	}
	// A row that cannot be written (unknown user) removes its file again.
	if _, err := s.CreateDataset(ctx, v, NewDataset{UserID: 999, Content: strings.NewReader(good), MaxSize: 1 << 20}); err == nil {
		t.Fatal("dataset of an unknown user accepted")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("vault holds %d files, want only the accepted one", len(entries))
	}
}

func TestShareLongerThan(t *testing.T) {
	d := Dataset{Rows: 4, Histogram: histogram([]int{10, 100, 300, 9000})}
	for max, want := range map[int]float64{16: 0.75, 128: 0.5, 256: 0.5, 512: 0.25, 8192: 0.25, 16384: 0} {
		if got := d.ShareLongerThan(max); got != want {
			t.Errorf("ShareLongerThan(%d) = %v, want %v", max, got, want)
		}
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
