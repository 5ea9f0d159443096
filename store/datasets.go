package store

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// LengthBuckets are the upper bounds (estimated tokens, inclusive) of the length histogram;
// a last bucket holds longer rows. Powers of two, so the share of rows over any offered
// max sequence length is exact.
var LengthBuckets = []int{16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192}

// Dataset is an uploaded, validated training file.
type Dataset struct {
	ID        int64
	UserID    int64
	Name      string
	Format    DatasetFormat
	FileID    string
	SizeBytes int64
	Rows      int
	Tokens    int64
	Histogram []int // len(LengthBuckets)+1 counts
	CreatedAt time.Time
}

// ShareLongerThan is the fraction of rows whose estimated tokens exceed maxSeqLen, counted
// by whole buckets (exact when maxSeqLen is one of LengthBuckets).
func (d Dataset) ShareLongerThan(maxSeqLen int) float64 {
	if d.Rows == 0 {
		return 0
	}
	// Bucket i holds rows in (LengthBuckets[i-1], LengthBuckets[i]]; all of them are
	// longer than maxSeqLen when its lower bound is at least maxSeqLen.
	over, lower := 0, 0
	for i, n := range d.Histogram {
		if lower >= maxSeqLen {
			over += n
		}
		if i < len(LengthBuckets) {
			lower = LengthBuckets[i]
		}
	}
	return float64(over) / float64(d.Rows)
}

func histogram(rowTokens []int) []int {
	h := make([]int, len(LengthBuckets)+1)
	for _, t := range rowTokens {
		i := 0
		for i < len(LengthBuckets) && t > LengthBuckets[i] {
			i++
		}
		h[i]++
	}
	return h
}

// DatasetInvalidError carries the validation report of a refused upload.
type DatasetInvalidError struct{ Report DatasetReport }

func (e *DatasetInvalidError) Error() string {
	msgs := make([]string, 0, len(e.Report.Errors))
	for _, le := range e.Report.Errors {
		msgs = append(msgs, le.String())
	}
	return "store: invalid dataset: " + strings.Join(msgs, "; ")
}

// ErrDatasetTooLarge is returned when an upload passes the size cap.
var ErrDatasetTooLarge = errors.New("store: dataset larger than the upload limit")

// NewDataset describes an upload.
type NewDataset struct {
	UserID  int64
	Name    string    // shown to the person; a label only, never a path
	Content io.Reader // the JSONL bytes as they arrive
	MaxSize int64     // size cap in bytes
	Limits  DatasetLimits
	// QuotaBytes caps the bytes of the person's stored (not deleted) datasets, this one
	// included; past it CreateDataset answers a *QuotaError (TUNELAB_QUOTA_DATASET_BYTES).
	// 0: no limit.
	QuotaBytes int64
}

// CreateDataset validates the upload while encrypting it into the vault, in one pass. An
// invalid or oversized file leaves nothing behind: no file, no row.
func (s *Store) CreateDataset(ctx context.Context, v *Vault, nd NewDataset) (Dataset, error) {
	name := CleanDatasetName(nd.Name)
	// The quota is checked before the upload is read (nothing is streamed for a person
	// already at it, and the stream stops once it would pass it), and again where it
	// counts: in the transaction that inserts the row.
	limit, quotaBound := nd.MaxSize, false
	if nd.QuotaBytes > 0 {
		used, err := datasetBytes(ctx, s.r, nd.UserID)
		if err != nil {
			return Dataset{}, fmt.Errorf("store: create dataset: %w", err)
		}
		if used >= nd.QuotaBytes {
			return Dataset{}, &QuotaError{Quota: QuotaDatasetBytes, Used: used, Limit: nd.QuotaBytes}
		}
		if left := nd.QuotaBytes - used; limit <= 0 || left < limit {
			limit, quotaBound = left, true
		}
	}
	w, err := v.Create()
	if err != nil {
		return Dataset{}, err
	}
	counted := &countingReader{r: nd.Content, limit: limit}
	report, err := ValidateDataset(io.TeeReader(counted, w), nd.Limits)
	if err == nil && counted.over {
		err = ErrDatasetTooLarge
	}
	if err != nil {
		w.Abort()
		if counted.over && quotaBound {
			return Dataset{}, &QuotaError{Quota: QuotaDatasetBytes, Used: nd.QuotaBytes - limit, Limit: nd.QuotaBytes}
		}
		if counted.over {
			return Dataset{}, ErrDatasetTooLarge
		}
		return Dataset{}, err
	}
	if !report.Valid() {
		w.Abort()
		return Dataset{}, &DatasetInvalidError{Report: report}
	}
	fileID, err := w.Commit()
	if err != nil {
		return Dataset{}, err
	}
	d := Dataset{UserID: nd.UserID, Name: name, Format: report.Format, FileID: fileID, SizeBytes: counted.n,
		Rows: report.Rows, Tokens: report.Tokens, Histogram: histogram(report.RowTokens), CreatedAt: fromMS(ms(s.now()))}
	hist, _ := json.Marshal(d.Histogram)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if nd.QuotaBytes > 0 {
			used, err := datasetBytes(ctx, tx, nd.UserID)
			if err != nil {
				return err
			}
			if used+d.SizeBytes > nd.QuotaBytes {
				return &QuotaError{Quota: QuotaDatasetBytes, Used: used, Limit: nd.QuotaBytes}
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO datasets (user_id, name, format, file_id, size_bytes, row_count, est_tokens, histogram, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, d.UserID, d.Name, d.Format, d.FileID, d.SizeBytes, d.Rows, d.Tokens, string(hist), ms(d.CreatedAt))
		if err == nil {
			d.ID, err = res.LastInsertId()
		}
		return err
	})
	if err != nil {
		v.Remove(fileID) // the row failed: do not keep an orphan file
		var quota *QuotaError
		if errors.As(err, &quota) {
			return Dataset{}, err
		}
		return Dataset{}, fmt.Errorf("store: create dataset: %w", err)
	}
	return d, nil
}

// datasetBytes is the size of a person's stored datasets: what their dataset quota counts
// (deleted ones are not counted; their files go with the next purge).
func datasetBytes(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, userID int64) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, "SELECT COALESCE(SUM(size_bytes), 0) FROM datasets WHERE user_id = ? AND deleted_at IS NULL", userID).Scan(&n)
	return n, err
}

// countingReader counts bytes and stops with an error past the limit.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
	over  bool
}

var errOverLimit = errors.New("over the size limit")

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limit > 0 && c.n >= c.limit {
		// Peek one byte to tell "exactly at the limit" from "over it".
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			c.over = true
			return 0, errOverLimit
		}
	}
	if c.limit > 0 && int64(len(p)) > c.limit-c.n {
		p = p[:c.limit-c.n]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

const datasetColumns = "id, user_id, name, format, file_id, size_bytes, row_count, est_tokens, histogram, created_at"

func scanDataset(row interface{ Scan(...any) error }) (Dataset, error) {
	var d Dataset
	var hist string
	var created int64
	if err := row.Scan(&d.ID, &d.UserID, &d.Name, &d.Format, &d.FileID, &d.SizeBytes, &d.Rows, &d.Tokens, &hist, &created); err != nil {
		return Dataset{}, err
	}
	if err := json.Unmarshal([]byte(hist), &d.Histogram); err != nil {
		return Dataset{}, fmt.Errorf("histogram of dataset %d: %w", d.ID, err)
	}
	d.CreatedAt = fromMS(created)
	return d, nil
}

// Dataset returns one of the user's datasets; another person's or a deleted one is
// ErrNotFound.
func (s *Store) Dataset(ctx context.Context, userID, id int64) (Dataset, error) {
	d, err := scanDataset(s.r.QueryRowContext(ctx, "SELECT "+datasetColumns+
		" FROM datasets WHERE id = ? AND user_id = ? AND deleted_at IS NULL", id, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return Dataset{}, ErrNotFound
	}
	if err != nil {
		return Dataset{}, fmt.Errorf("store: dataset: %w", err)
	}
	return d, nil
}

// Datasets lists the user's datasets, newest first.
func (s *Store) Datasets(ctx context.Context, userID int64) ([]Dataset, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+datasetColumns+
		" FROM datasets WHERE user_id = ? AND deleted_at IS NULL ORDER BY id DESC", userID)
	if err != nil {
		return nil, fmt.Errorf("store: datasets: %w", err)
	}
	defer rows.Close()
	var out []Dataset
	for rows.Next() {
		d, err := scanDataset(rows)
		if err != nil {
			return nil, fmt.Errorf("store: datasets: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeleteDataset hides a dataset at once; its file is purged by the retention job.
func (s *Store) DeleteDataset(ctx context.Context, userID, id int64) error {
	res, err := s.w.ExecContext(ctx, "UPDATE datasets SET deleted_at = ? WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
		ms(s.now()), id, userID)
	if err != nil {
		return fmt.Errorf("store: delete dataset: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DatasetPreview decrypts and returns the first n non-blank lines of a dataset.
func DatasetPreview(v *Vault, d Dataset, n int) ([]string, error) {
	r, err := v.Open(d.FileID)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), DefaultDatasetLimits.MaxLineBytes+2)
	var out []string
	for len(out) < n && sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\xef\xbb\xbf"))
		if line != "" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("store: dataset preview: %w", err)
	}
	return out, nil
}

// DatasetByID returns a dataset whoever owns it, deleted or not, for the worker API, which
// has already tied the request to a run (the file stays until the retention purge).
func (s *Store) DatasetByID(ctx context.Context, id int64) (Dataset, error) {
	d, err := scanDataset(s.r.QueryRowContext(ctx, "SELECT "+datasetColumns+" FROM datasets WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Dataset{}, ErrNotFound
	}
	if err != nil {
		return Dataset{}, fmt.Errorf("store: dataset: %w", err)
	}
	return d, nil
}

// MaxDatasetNameRunes is the longest dataset name kept; a longer one is cut.
const MaxDatasetNameRunes = 120

// CleanDatasetName is the label a dataset is stored under: valid UTF-8, no control
// characters (each becomes a space), trimmed, at most MaxDatasetNameRunes runes, and
// "Untitled dataset" when nothing is left.
func CleanDatasetName(name string) string {
	if !utf8.ValidString(name) {
		return "Untitled dataset"
	}
	name = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, name))
	if utf8.RuneCountInString(name) > MaxDatasetNameRunes {
		name = strings.TrimSpace(string([]rune(name)[:MaxDatasetNameRunes]))
	}
	if name == "" {
		return "Untitled dataset"
	}
	return name
}
