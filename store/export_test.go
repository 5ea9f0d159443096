package store

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEveryTableIsExportedOrExcluded: each table is in the export or excluded with a
// reason, so a new table holding someone's data cannot be left out unnoticed.
func TestEveryTableIsExportedOrExcluded(t *testing.T) {
	f := newCloseFixture(t)
	tables, err := column[string](context.Background(), f.s, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range tables {
		in, out := exportedTables[name] != "", exportExcluded[name] != ""
		if in == out {
			t.Errorf("table %s: exported=%v excluded=%v; decide one in store/export_build.go", name, in, out)
		}
	}
}

// readExport decrypts an export's ZIP from the vault.
func readExport(t *testing.T, v *Vault, fileID string) map[string][]byte {
	t.Helper()
	rc, err := v.Open(fileID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, zf := range zr.File {
		r, _ := zf.Open()
		out[zf.Name], _ = io.ReadAll(r)
		r.Close()
	}
	return out
}

// TestExportRoundTrip: the ZIP holds the account, a run with its config, timeline, logs
// and every metric point, the dataset decrypted, the snapshot (or its link past the
// limit), and a manifest whose sha256 match each file. One export a day; the link works
// once, only for its owner, for 7 days; then the file is deleted.
func TestExportRoundTrip(t *testing.T) {
	f := newCloseFixture(t)
	ctx := context.Background()
	u, _ := f.s.CreateUser(ctx, NewUser{Email: "export@example.com", Password: "export passphrase", TermsVersion: "v"})
	other, _ := f.s.CreateUser(ctx, NewUser{Email: "other@example.com", Password: "export passphrase", TermsVersion: "v"})
	content := strings.Join(rows(chatRow, 12), "\n")
	d, err := f.s.CreateDataset(ctx, f.v, NewDataset{UserID: u.ID, Name: "mine", Content: strings.NewReader(content), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	run, _ := f.s.CreateRun(ctx, NewRun{UserID: u.ID, DatasetID: d.ID, Config: testRunConfig("lora"), Backend: "local", Name: "export run"})
	f.s.ClaimQueuedRun(ctx, "local", []byte("tok"))
	f.s.Heartbeat(ctx, run.ID, 0, 10)
	var pts []MetricPoint
	for i := 1; i <= 500; i++ {
		pts = append(pts, MetricPoint{Name: "loss", Step: i, Value: float64(i) / 7})
	}
	if _, err := f.s.AppendMetrics(ctx, run.ID, pts); err != nil {
		t.Fatal(err)
	}
	f.s.AppendLogs(ctx, run.ID, []string{"hello from the worker"})
	for _, step := range []int{5, 10} {
		body := bytes.Repeat([]byte{byte(step)}, 1000)
		sum := sha256.Sum256(body)
		if _, err := f.s.CreateSnapshot(ctx, f.v, NewSnapshot{RunID: run.ID, Step: step, Final: step == 10, SHA256: hex.EncodeToString(sum[:]), MaxBytes: 1 << 20}, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}

	e, err := f.s.RequestExport(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.RequestExport(ctx, u.ID); !errors.Is(err, ErrExportTooSoon) {
		t.Fatalf("second export the same day: %v", err)
	}
	fileID, size, err := f.s.BuildExport(ctx, f.v, e.ID, ExportOptions{SnapshotLimit: 1500, BaseURL: "https://tunelab.test"})
	if err != nil {
		t.Fatal(err)
	}
	token, err := f.s.FinishExport(ctx, e.ID, fileID, size)
	if err != nil {
		t.Fatal(err)
	}
	files := readExport(t, f.v, fileID)
	var manifest struct {
		SchemaVersion int    `json:"schema_version"`
		CreatedAt     string `json:"created_at"`
		Files         []struct {
			Path, SHA256 string
			Bytes        int64
		}
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || manifest.SchemaVersion != ExportSchemaVersion || manifest.CreatedAt == "" {
		t.Fatalf("manifest: %+v %v", manifest, err)
	}
	if len(manifest.Files) != len(files)-1 {
		t.Fatalf("manifest lists %d files, the ZIP holds %d besides it", len(manifest.Files), len(files)-1)
	}
	for _, mf := range manifest.Files {
		sum := sha256.Sum256(files[mf.Path])
		if hex.EncodeToString(sum[:]) != mf.SHA256 || int64(len(files[mf.Path])) != mf.Bytes {
			t.Errorf("%s: sha256 or size differs from the manifest", mf.Path)
		}
	}
	if string(files["datasets/"+itoa(d.ID)+".jsonl"]) != content {
		t.Error("the dataset in the export is not the uploaded bytes")
	}
	csvLines := strings.Split(strings.TrimSpace(string(files["runs/"+itoa(run.ID)+"/metrics.csv"])), "\n")
	if len(csvLines) != 501 || !strings.HasPrefix(csvLines[500], "loss,500,") {
		t.Errorf("metrics.csv: %d lines, last %q; want every one of 500 points", len(csvLines), csvLines[len(csvLines)-1])
	}
	if !strings.Contains(string(files["runs.json"]), `"learning_rate"`) || !strings.Contains(string(files["runs.json"]), "export run") {
		t.Errorf("runs.json lacks the config or name: %s", files["runs.json"])
	}
	if !strings.Contains(string(files["runs/"+itoa(run.ID)+"/logs.txt"]), "hello from the worker") {
		t.Error("logs missing")
	}
	if !strings.Contains(string(files["runs/"+itoa(run.ID)+"/timeline.json"]), `"running"`) {
		t.Errorf("timeline: %s", files["runs/"+itoa(run.ID)+"/timeline.json"])
	}
	if _, ok := files["snapshots/run-"+itoa(run.ID)+"-step-5.safetensors"]; !ok {
		t.Error("the first snapshot (inside the limit) is not carried")
	}
	if !strings.Contains(string(files["snapshots.json"]), "https://tunelab.test/settings/export/"+itoa(e.ID)+"/snapshots/") {
		t.Errorf("the snapshot past the limit has no link: %s", files["snapshots.json"])
	}
	snaps, _ := f.s.Snapshots(ctx, u.ID, run.ID)
	late := snaps[len(snaps)-1].ID
	if _, err := f.s.ExportSnapshot(ctx, u.ID, e.ID, late); err != nil {
		t.Fatalf("snapshot link of the export: %v", err)
	}
	if _, err := f.s.ExportSnapshot(ctx, other.ID, e.ID, late); !errors.Is(err, ErrNotFound) {
		t.Fatalf("snapshot link for another person: %v", err)
	}
	if strings.Contains(string(files["account.json"]), "password") || !strings.Contains(string(files["account.json"]), "export@example.com") {
		t.Errorf("account.json: %s", files["account.json"])
	}

	// The link: not another person's, once only, 7 days.
	if _, err := f.s.UseExportLink(ctx, other.ID, token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another person's link: %v", err)
	}
	if _, err := f.s.UseExportLink(ctx, u.ID, token); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.UseExportLink(ctx, u.ID, token); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second use: %v", err)
	}
	f.clock.advance(ExportEvery)
	e2, err := f.s.RequestExport(ctx, u.ID)
	if err != nil {
		t.Fatalf("export the next day: %v", err)
	}
	fileID2, size2, _ := f.s.BuildExport(ctx, f.v, e2.ID, ExportOptions{})
	token2, _ := f.s.FinishExport(ctx, e2.ID, fileID2, size2)
	f.clock.advance(ExportLinkTTL + time.Minute)
	if _, err := f.s.UseExportLink(ctx, u.ID, token2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("link after 7 days: %v", err)
	}
	if _, err := f.s.ExportSnapshot(ctx, u.ID, e.ID, late); !errors.Is(err, ErrNotFound) {
		t.Fatalf("snapshot link after 7 days: %v", err)
	}
	rep, err := f.s.Purge(ctx, f.v, PurgeOptions{})
	if err != nil || rep.Exports != 2 {
		t.Fatalf("purge of expired exports: %+v %v", rep, err)
	}
	for _, id := range []string{fileID, fileID2} {
		if _, err := os.Stat(filepath.Join(f.dir, "files", id)); !os.IsNotExist(err) {
			t.Fatalf("export file %s still there: %v", id, err)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
