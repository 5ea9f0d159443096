package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestQueuedRunsQuotaHoldsUnderConcurrentCreates(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	const limit = 3
	// Eight at once: exactly the quota's worth get queued, the rest are refused.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := f.s.CreateRun(ctx, NewRun{UserID: f.ada.ID, DatasetID: f.chat.ID, Config: testRunConfig("lora"), Backend: "local", MaxQueued: limit})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok, refused := 0, 0
	for err := range errs {
		var q *QuotaError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &q) && q.Quota == QuotaQueuedRuns && q.Used == limit && q.Limit == limit:
			refused++
		default:
			t.Fatalf("create run: %v", err)
		}
	}
	if ok != limit || refused != 8-limit {
		t.Fatalf("%d queued, %d refused; want %d and %d", ok, refused, limit, 8-limit)
	}
	// Another person's queue is their own; a cancelled run frees a place.
	if _, err := f.s.CreateRun(ctx, NewRun{UserID: f.bob.ID, DatasetID: f.bobChat.ID, Config: testRunConfig("lora"), Backend: "local", MaxQueued: limit}); err != nil {
		t.Fatalf("bob's first run: %v", err)
	}
	runs, _ := f.s.Runs(ctx, f.ada.ID)
	if _, err := f.s.CancelRun(ctx, f.ada.ID, runs[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CreateRun(ctx, NewRun{UserID: f.ada.ID, DatasetID: f.chat.ID, Config: testRunConfig("lora"), Backend: "local", MaxQueued: limit}); err != nil {
		t.Fatalf("after a cancel: %v", err)
	}
}

func TestDatasetQuotaCountsStoredBytes(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	ds, _ := f.s.Datasets(ctx, f.ada.ID)
	used := int64(0)
	for _, d := range ds {
		used += d.SizeBytes
	}
	content := strings.Join(rows(chatRow, 12), "\n")
	size := int64(len(content))
	upload := func(quota int64) (Dataset, error) {
		return f.s.CreateDataset(ctx, f.v, NewDataset{UserID: f.ada.ID, Name: "q", Content: strings.NewReader(content), MaxSize: 1 << 20, QuotaBytes: quota})
	}
	filesBefore := vaultCount(t, f.dir)
	for _, quota := range []int64{used, used + size - 1} {
		_, err := upload(quota)
		var q *QuotaError
		if !errors.As(err, &q) || q.Quota != QuotaDatasetBytes || q.Used != used || q.Limit != quota {
			t.Fatalf("quota %d with %d used, uploading %d: %v", quota, used, size, err)
		}
	}
	if got := vaultCount(t, f.dir); got != filesBefore {
		t.Fatalf("refused uploads left files: %d before, %d after", filesBefore, got)
	}
	// Exactly at the quota is allowed; deleting a dataset makes room again.
	d, err := upload(used + size)
	if err != nil {
		t.Fatalf("upload up to the quota: %v", err)
	}
	if _, err := upload(used + size); err == nil {
		t.Fatal("an upload past the quota was stored")
	}
	if err := f.s.DeleteDataset(ctx, f.ada.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := upload(used + size); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	// Bob's datasets are not Ada's.
	if _, err := f.s.CreateDataset(ctx, f.v, NewDataset{UserID: f.bob.ID, Name: "b", Content: strings.NewReader(content), MaxSize: 1 << 20, QuotaBytes: 2 * size}); err != nil {
		t.Fatalf("bob: %v", err)
	}
}

func TestDatasetQuotaHoldsUnderConcurrentUploads(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	ds, _ := f.s.Datasets(ctx, f.ada.ID)
	used := int64(0)
	for _, d := range ds {
		used += d.SizeBytes
	}
	content := strings.Join(rows(chatRow, 12), "\n")
	quota := used + 2*int64(len(content)) + 10 // room for two, not three
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored, refused := 0, 0
	for range 6 {
		wg.Go(func() {
			_, err := f.s.CreateDataset(ctx, f.v, NewDataset{UserID: f.ada.ID, Name: "c", Content: strings.NewReader(content), MaxSize: 1 << 20, QuotaBytes: quota})
			var q *QuotaError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				stored++
			case errors.As(err, &q):
				refused++
			default:
				t.Errorf("upload: %v", err)
			}
		})
	}
	wg.Wait()
	if stored != 2 || refused != 4 {
		t.Fatalf("%d stored, %d refused; want 2 and 4", stored, refused)
	}
	ds, _ = f.s.Datasets(ctx, f.ada.ID)
	total := int64(0)
	for _, d := range ds {
		total += d.SizeBytes
	}
	if total > quota {
		t.Fatalf("%d bytes stored, quota %d", total, quota)
	}
}
