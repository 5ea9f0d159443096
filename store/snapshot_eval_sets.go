package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// EvalDataset is one of a person's datasets as an eval set: deleted ones too, so a
// dataset deleted after it was picked is told apart from one that is not theirs.
type EvalDataset struct {
	ID      int64
	Name    string
	Format  DatasetFormat
	Rows    int
	Deleted bool // deleted by its owner (or expired); its file may be gone
	Purged  bool // its name and file are gone
}

const evalDatasetColumns = "id, name, format, row_count, deleted_at IS NOT NULL, purged_at IS NOT NULL"

func scanEvalDataset(row interface{ Scan(...any) error }) (EvalDataset, error) {
	var d EvalDataset
	err := row.Scan(&d.ID, &d.Name, &d.Format, &d.Rows, &d.Deleted, &d.Purged)
	return d, err
}

// EvalDatasetOf returns one of the user's datasets, deleted or not; another person's
// (or none) is ErrNotFound.
func (s *Store) EvalDatasetOf(ctx context.Context, userID, id int64) (EvalDataset, error) {
	d, err := scanEvalDataset(s.r.QueryRowContext(ctx, "SELECT "+evalDatasetColumns+" FROM datasets WHERE id = ? AND user_id = ?", id, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return EvalDataset{}, ErrNotFound
	}
	if err != nil {
		return EvalDataset{}, fmt.Errorf("store: eval dataset: %w", err)
	}
	return d, nil
}

// RunEvalDatasets lists the datasets the user's run has evaluations on, deleted ones
// included, by id.
func (s *Store) RunEvalDatasets(ctx context.Context, userID, runID int64) ([]EvalDataset, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+evalDatasetColumns+` FROM datasets
		WHERE user_id = ? AND id IN (SELECT dataset_id FROM snapshot_evals WHERE run_id = ? AND user_id = ? AND dataset_id IS NOT NULL)
		ORDER BY id`, userID, runID, userID)
	if err != nil {
		return nil, fmt.Errorf("store: eval datasets: %w", err)
	}
	defer rows.Close()
	var out []EvalDataset
	for rows.Next() {
		d, err := scanEvalDataset(rows)
		if err != nil {
			return nil, fmt.Errorf("store: eval datasets: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
