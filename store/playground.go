package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The playground: the snapshots a person can pick, and the history of their prompts.

// PlaygroundHistoryLimit is how many prompts a person's history keeps.
const PlaygroundHistoryLimit = 50

// PlaygroundSnapshot is one of a person's snapshots with what the playground shows of
// its run.
type PlaygroundSnapshot struct {
	Snapshot
	RunName   string
	BaseModel string // the run config's base_model
}

const playgroundSnapshotColumns = snapshotColumns + ", r.name, COALESCE(json_extract(r.config, '$.base_model'), '')"

func scanPlaygroundSnapshot(row interface{ Scan(...any) error }) (PlaygroundSnapshot, error) {
	var p PlaygroundSnapshot
	var created int64
	err := row.Scan(&p.ID, &p.RunID, &p.Step, &p.Final, &p.FileID, &p.SizeBytes, &p.SHA256, &created, &p.RunName, &p.BaseModel)
	p.CreatedAt = fromMS(created)
	return p, err
}

// PlaygroundSnapshots lists the person's snapshots, newest run first, by step.
func (s *Store) PlaygroundSnapshots(ctx context.Context, userID int64) ([]PlaygroundSnapshot, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+playgroundSnapshotColumns+` FROM snapshots s JOIN runs r ON r.id = s.run_id
		WHERE r.user_id = ? AND r.deleted_at IS NULL AND s.deleted_at IS NULL ORDER BY r.id DESC, s.step`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: playground snapshots: %w", err)
	}
	defer rows.Close()
	var out []PlaygroundSnapshot
	for rows.Next() {
		p, err := scanPlaygroundSnapshot(rows)
		if err != nil {
			return nil, fmt.Errorf("store: playground snapshots: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PlaygroundSnapshotByID returns one of the person's snapshots; another person's, a
// deleted one or an unknown id is ErrNotFound.
func (s *Store) PlaygroundSnapshotByID(ctx context.Context, userID, id int64) (PlaygroundSnapshot, error) {
	p, err := scanPlaygroundSnapshot(s.r.QueryRowContext(ctx, "SELECT "+playgroundSnapshotColumns+` FROM snapshots s
		JOIN runs r ON r.id = s.run_id WHERE s.id = ? AND r.user_id = ? AND r.deleted_at IS NULL AND s.deleted_at IS NULL`, id, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return PlaygroundSnapshot{}, ErrNotFound
	}
	if err != nil {
		return PlaygroundSnapshot{}, fmt.Errorf("store: playground snapshot: %w", err)
	}
	return p, nil
}

// PlaygroundPrompt is one prompt of the history, with the settings it ran with.
type PlaygroundPrompt struct {
	ID          int64
	UserID      int64
	CreatedAt   time.Time
	Mode        string // "completion" or "chat"
	System      string // chat only
	Prompt      string // the completion text, or the user message
	ModelA      string // "base:<model id>" or "snapshot:<id>"
	ModelB      string // "" unless two models were compared
	Temperature float64
	TopP        float64
	MaxTokens   int
	Stop        []string
	Seed        int64
}

// SavePlaygroundPrompt adds a prompt to the person's history and drops what falls past
// PlaygroundHistoryLimit.
func (s *Store) SavePlaygroundPrompt(ctx context.Context, p PlaygroundPrompt) (PlaygroundPrompt, error) {
	p.CreatedAt = s.now()
	stop, err := json.Marshal(p.Stop)
	if err != nil {
		return PlaygroundPrompt{}, fmt.Errorf("store: save playground prompt: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO playground_prompts (user_id, created_at, mode, system, prompt, model_a, model_b,
			temperature, top_p, max_tokens, stop, seed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			p.UserID, ms(p.CreatedAt), p.Mode, p.System, p.Prompt, p.ModelA, p.ModelB, p.Temperature, p.TopP, p.MaxTokens,
			string(stop), p.Seed).Scan(&p.ID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM playground_prompts WHERE user_id = ? AND id NOT IN
			(SELECT id FROM playground_prompts WHERE user_id = ? ORDER BY id DESC LIMIT ?)`, p.UserID, p.UserID, PlaygroundHistoryLimit)
		return err
	})
	if err != nil {
		return PlaygroundPrompt{}, fmt.Errorf("store: save playground prompt: %w", err)
	}
	return p, nil
}

const playgroundPromptColumns = "id, user_id, created_at, mode, system, prompt, model_a, model_b, temperature, top_p, max_tokens, stop, seed"

func scanPlaygroundPrompt(row interface{ Scan(...any) error }) (PlaygroundPrompt, error) {
	var p PlaygroundPrompt
	var created int64
	var stop string
	err := row.Scan(&p.ID, &p.UserID, &created, &p.Mode, &p.System, &p.Prompt, &p.ModelA, &p.ModelB, &p.Temperature, &p.TopP,
		&p.MaxTokens, &stop, &p.Seed)
	p.CreatedAt = fromMS(created)
	if err == nil && stop != "" {
		err = json.Unmarshal([]byte(stop), &p.Stop)
	}
	return p, err
}

// PlaygroundPrompts is the person's history, newest first.
func (s *Store) PlaygroundPrompts(ctx context.Context, userID int64) ([]PlaygroundPrompt, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+playgroundPromptColumns+` FROM playground_prompts WHERE user_id = ?
		ORDER BY id DESC LIMIT ?`, userID, PlaygroundHistoryLimit)
	if err != nil {
		return nil, fmt.Errorf("store: playground prompts: %w", err)
	}
	defer rows.Close()
	var out []PlaygroundPrompt
	for rows.Next() {
		p, err := scanPlaygroundPrompt(rows)
		if err != nil {
			return nil, fmt.Errorf("store: playground prompts: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PlaygroundPromptByID returns one prompt of the person's history; anything else is
// ErrNotFound.
func (s *Store) PlaygroundPromptByID(ctx context.Context, userID, id int64) (PlaygroundPrompt, error) {
	p, err := scanPlaygroundPrompt(s.r.QueryRowContext(ctx, "SELECT "+playgroundPromptColumns+
		" FROM playground_prompts WHERE id = ? AND user_id = ?", id, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return PlaygroundPrompt{}, ErrNotFound
	}
	if err != nil {
		return PlaygroundPrompt{}, fmt.Errorf("store: playground prompt: %w", err)
	}
	return p, nil
}
