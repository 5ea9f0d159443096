package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of a run's labels.
const (
	MaxRunNameLen  = 100 // characters
	MaxRunTags     = 10
	MaxRunTagLen   = 32
	MaxRunNotesLen = 10_000
)

// DefaultRunName is "byte-mlp-small · lora · 7f3a": the model (after its last '/'), the
// method and four random hex digits, so runs of the same settings still differ.
func DefaultRunName(c RunConfig) string {
	model := c.BaseModel
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	var b [2]byte
	rand.Read(b[:])
	return model + " · " + string(c.Method) + " · " + hex.EncodeToString(b[:])
}

// RunLabels are what a person writes about a run: its name, tags and notes.
type RunLabels struct {
	Name  string
	Tags  []string
	Notes string
}

// ParseTags splits what was typed in the tags field (commas or spaces), lower-cased, with
// repeats dropped; Validate says whether the result is acceptable.
func ParseTags(s string) []string {
	var out []string
	for _, t := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func validTag(t string) bool {
	if t == "" || len(t) > MaxRunTagLen {
		return false
	}
	for _, c := range []byte(t) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Validate checks the labels and returns messages by form field (name, tags, notes).
func (l RunLabels) Validate() map[string]string {
	bad := map[string]string{}
	if n := utf8.RuneCountInString(l.Name); n < 1 || n > MaxRunNameLen || !utf8.ValidString(l.Name) {
		bad["name"] = fmt.Sprintf("Use 1 to %d characters.", MaxRunNameLen)
	}
	if len(l.Tags) > MaxRunTags {
		bad["tags"] = fmt.Sprintf("Use at most %d tags (%d given).", MaxRunTags, len(l.Tags))
	} else {
		for _, t := range l.Tags {
			if !validTag(t) {
				bad["tags"] = fmt.Sprintf("%q is not a tag: use 1 to %d of a-z, 0-9, '-', '_' and '.', separated by commas or spaces.", t, MaxRunTagLen)
				break
			}
		}
	}
	if utf8.RuneCountInString(l.Notes) > MaxRunNotesLen || !utf8.ValidString(l.Notes) {
		bad["notes"] = fmt.Sprintf("Keep notes under %d characters.", MaxRunNotesLen)
	}
	return bad
}

// SetRunLabels renames one of the user's runs and sets its tags and notes; the labels
// must have passed Validate.
func (s *Store) SetRunLabels(ctx context.Context, userID, id int64, l RunLabels) error {
	if len(l.Validate()) > 0 {
		return fmt.Errorf("store: set run labels: invalid labels")
	}
	res, err := s.w.ExecContext(ctx, "UPDATE runs SET name = ?, tags = ?, notes = ? WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
		l.Name, strings.Join(l.Tags, " "), l.Notes, id, userID)
	if err != nil {
		return fmt.Errorf("store: set run labels: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// RunCursor is a position in the run list: the created time (Unix ms) and id of a run.
type RunCursor struct {
	Created int64
	ID      int64
}

// String writes the cursor as it travels in a URL: "1732876800000-42".
func (c RunCursor) String() string {
	return strconv.FormatInt(c.Created, 10) + "-" + strconv.FormatInt(c.ID, 10)
}

// ParseRunCursor reads String's form; ok is false for anything else.
func ParseRunCursor(s string) (c RunCursor, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return RunCursor{}, false
	}
	var err1, err2 error
	c.Created, err1 = strconv.ParseInt(a, 10, 64)
	c.ID, err2 = strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || c.Created < 0 || c.ID <= 0 {
		return RunCursor{}, false
	}
	return c, true
}

// RunFilter narrows and positions the run list. Zero fields do not filter. Before lists
// the page just older than a cursor, After the page just newer; neither is the first page.
type RunFilter struct {
	Status    RunStatus
	DatasetID int64
	Method    Method
	Name      string // a prefix of the name, any case
	Before    *RunCursor
	After     *RunCursor
	Limit     int // 50 when 0
}

// RunPage is one page of the run list, newest first.
type RunPage struct {
	Runs     []Run
	HasOlder bool
	HasNewer bool
}

// Cursor is a run's position in the list.
func (r Run) Cursor() RunCursor { return RunCursor{Created: ms(r.CreatedAt), ID: r.ID} }

// escapeLike makes s match literally in a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ListRuns returns one page of the user's runs by keyset pagination on (created_at, id):
// every page reads only its own rows through the runs_list* indexes, however many runs
// there are.
func (s *Store) ListRuns(ctx context.Context, userID int64, f RunFilter) (RunPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	where := "WHERE r.user_id = ? AND r.deleted_at IS NULL"
	args := []any{userID}
	if f.Status != "" {
		where += " AND r.status = ?"
		args = append(args, f.Status)
	}
	if f.DatasetID != 0 {
		where += " AND r.dataset_id = ?"
		args = append(args, f.DatasetID)
	}
	if f.Method != "" {
		where += " AND r.method = ?"
		args = append(args, f.Method)
	}
	if f.Name != "" {
		where += ` AND r.name LIKE ? ESCAPE '\'`
		args = append(args, escapeLike(f.Name)+"%")
	}
	page := where
	pageArgs := slices.Clone(args)
	order := " ORDER BY r.created_at DESC, r.id DESC"
	switch {
	case f.After != nil:
		page += " AND (r.created_at, r.id) > (?, ?)"
		pageArgs = append(pageArgs, f.After.Created, f.After.ID)
		order = " ORDER BY r.created_at, r.id"
	case f.Before != nil:
		page += " AND (r.created_at, r.id) < (?, ?)"
		pageArgs = append(pageArgs, f.Before.Created, f.Before.ID)
	}
	pageArgs = append(pageArgs, limit+1)
	runs, err := s.queryListRuns(ctx, page+order+" LIMIT ?", pageArgs...)
	if err != nil {
		return RunPage{}, fmt.Errorf("store: list runs: %w", err)
	}
	var p RunPage
	more := len(runs) > limit
	if more {
		runs = runs[:limit]
	}
	if f.After != nil {
		slices.Reverse(runs)
		p.HasNewer = more
	} else {
		p.HasOlder = more
	}
	p.Runs = runs
	// The other direction: is there anything beyond the cursor we came from?
	if f.After != nil || f.Before != nil {
		edge, cmp := f.Before, ">="
		if f.After != nil {
			edge, cmp = f.After, "<="
		}
		var one int
		err := s.r.QueryRowContext(ctx, "SELECT 1 FROM runs r "+where+" AND (r.created_at, r.id) "+cmp+" (?, ?) LIMIT 1",
			append(args, edge.Created, edge.ID)...).Scan(&one)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return RunPage{}, fmt.Errorf("store: list runs: %w", err)
		}
		if f.After != nil {
			p.HasOlder = err == nil
		} else {
			p.HasNewer = err == nil
		}
	}
	return p, nil
}

// RunsByID returns those of the given runs that are the user's and not deleted, newest
// first (the live rows of a page of the run list).
func (s *Store) RunsByID(ctx context.Context, userID int64, ids []int64) ([]Run, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := []any{userID}
	for _, id := range ids {
		args = append(args, id)
	}
	out, err := s.queryListRuns(ctx, "WHERE r.user_id = ? AND r.deleted_at IS NULL AND r.id IN ("+placeholders(len(ids))+
		") ORDER BY r.created_at DESC, r.id DESC", args...)
	if err != nil {
		return nil, fmt.Errorf("store: runs by id: %w", err)
	}
	return out, nil
}

// listColumns are what a row of the run list shows; the settings come from their column
// copies (migration 0007), so a page decodes no JSON.
const listColumns = `r.id, r.name, r.tags, d.name, r.status, r.step, r.total_steps, r.created_at, r.first_heartbeat_at,
	COALESCE((SELECT SUM(seconds) FROM usage u WHERE u.run_id = r.id AND u.deployment_id IS NULL), 0), r.base_model, r.method, r.learning_rate, r.epochs`

// queryListRuns runs a list query through a cached prepared statement and returns runs
// with only what a row shows: id, name, tags, dataset name, status, steps, created and
// first heartbeat times, GPU seconds, and of Config the base model, method, learning rate
// and epochs. Every column costs a little on each of the page's rows, so there are no more.
func (s *Store) queryListRuns(ctx context.Context, where string, args ...any) ([]Run, error) {
	stmt, err := s.cachedStmt(ctx, "SELECT "+listColumns+" FROM runs r JOIN datasets d ON d.id = r.dataset_id "+where)
	if err != nil {
		return nil, err
	}
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]Run, 0, 51)
	var tags string
	var created int64
	var first sql.NullInt64
	for rows.Next() {
		// Scanned in place: a Run of its own would escape to the heap, 512 bytes a row.
		out = append(out, Run{})
		r := &out[len(out)-1]
		if err := rows.Scan(&r.ID, &r.Name, &tags, &r.DatasetName, &r.Status, &r.Step, &r.TotalSteps, &created, &first,
			&r.GPUSeconds, &r.Config.BaseModel, &r.Config.Method, &r.Config.LearningRate, &r.Config.Epochs); err != nil {
			return nil, err
		}
		if tags != "" {
			r.Tags = strings.Fields(tags)
		}
		r.CreatedAt = fromMS(created)
		if first.Valid {
			r.FirstHeartbeat = fromMS(first.Int64)
		}
	}
	return out, rows.Err()
}

// cachedStmt prepares a read query once for the reader pool (database/sql then keeps it
// prepared per connection): the list queries are few and fixed, and preparing them
// again on every page view cost more than running them.
func (s *Store) cachedStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.r.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// RunMetricSummary is one metric of one run: its last, lowest and highest finite value.
type RunMetricSummary struct {
	Last, Min, Max *float64
}

// RunsMetric returns the summary of one metric for each of the runs that has it, in one
// query (the run list shows it per row).
func (s *Store) RunsMetric(ctx context.Context, runIDs []int64, name string) (map[int64]RunMetricSummary, error) {
	out := map[int64]RunMetricSummary{}
	if len(runIDs) == 0 {
		return out, nil
	}
	args := []any{rollupLevels, rollupLevels, name}
	for _, id := range runIDs {
		args = append(args, id)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT s.run_id, s.last_value,
			(SELECT MIN(min) FROM metric_rollups r WHERE r.series_id = s.id AND r.level = ?),
			(SELECT MAX(max) FROM metric_rollups r WHERE r.series_id = s.id AND r.level = ?)
		FROM metric_series s WHERE s.name = ? AND s.run_id IN (`+placeholders(len(runIDs))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: runs metric: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var last, mn, mx sql.NullFloat64
		if err := rows.Scan(&id, &last, &mn, &mx); err != nil {
			return nil, fmt.Errorf("store: runs metric: %w", err)
		}
		out[id] = RunMetricSummary{Last: nullFloat(last), Min: nullFloat(mn), Max: nullFloat(mx)}
	}
	return out, rows.Err()
}

// MetricNamesOf returns the metric names any of the runs has, sorted.
func (s *Store) MetricNamesOf(ctx context.Context, runIDs []int64) ([]string, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	args := make([]any, len(runIDs))
	for i, id := range runIDs {
		args[i] = id
	}
	stmt, err := s.cachedStmt(ctx, "SELECT DISTINCT name FROM metric_series WHERE run_id IN ("+placeholders(len(runIDs))+") ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("store: metric names: %w", err)
	}
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("store: metric names: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: metric names: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// RunCounts returns how many of the user's runs (not deleted) are in each status, from
// the totals the database keeps as runs change.
func (s *Store) RunCounts(ctx context.Context, userID int64) (map[RunStatus]int, error) {
	stmt, err := s.cachedStmt(ctx, "SELECT status, n FROM run_counts WHERE user_id = ? AND n > 0")
	if err != nil {
		return nil, fmt.Errorf("store: run counts: %w", err)
	}
	rows, err := stmt.QueryContext(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("store: run counts: %w", err)
	}
	defer rows.Close()
	out := map[RunStatus]int{}
	for rows.Next() {
		var st RunStatus
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("store: run counts: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}

// DatasetChoice is a dataset as a filter or form offers it.
type DatasetChoice struct {
	ID     int64
	Name   string
	Format DatasetFormat
}

// DatasetChoices returns the user's datasets (not deleted), newest first, at most limit.
func (s *Store) DatasetChoices(ctx context.Context, userID int64, limit int) ([]DatasetChoice, error) {
	stmt, err := s.cachedStmt(ctx, "SELECT id, name, format FROM datasets WHERE user_id = ? AND deleted_at IS NULL ORDER BY id DESC LIMIT ?")
	if err != nil {
		return nil, fmt.Errorf("store: dataset choices: %w", err)
	}
	rows, err := stmt.QueryContext(ctx, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: dataset choices: %w", err)
	}
	defer rows.Close()
	var out []DatasetChoice
	for rows.Next() {
		var d DatasetChoice
		if err := rows.Scan(&d.ID, &d.Name, &d.Format); err != nil {
			return nil, fmt.Errorf("store: dataset choices: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DatasetCount is how many datasets the user has (not deleted).
func (s *Store) DatasetCount(ctx context.Context, userID int64) (int, error) {
	var n int
	stmt, err := s.cachedStmt(ctx, "SELECT COUNT(*) FROM datasets WHERE user_id = ? AND deleted_at IS NULL")
	if err == nil {
		err = stmt.QueryRowContext(ctx, userID).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("store: dataset count: %w", err)
	}
	return n, nil
}

// DatasetPage is one page of the datasets list, newest first.
type DatasetPage struct {
	Datasets []Dataset
	HasOlder bool
	HasNewer bool
}

// ListDatasets returns a page of the user's datasets by keyset pagination on id: before
// (older than that id) or after (newer), or the newest page when both are 0.
func (s *Store) ListDatasets(ctx context.Context, userID, before, after int64, limit int) (DatasetPage, error) {
	if limit <= 0 {
		limit = 50
	}
	q := "SELECT " + datasetColumns + " FROM datasets WHERE user_id = ? AND deleted_at IS NULL"
	args := []any{userID}
	order := " ORDER BY id DESC"
	switch {
	case after > 0:
		q += " AND id > ?"
		args = append(args, after)
		order = " ORDER BY id"
	case before > 0:
		q += " AND id < ?"
		args = append(args, before)
	}
	rows, err := s.r.QueryContext(ctx, q+order+" LIMIT ?", append(args, limit+1)...)
	if err != nil {
		return DatasetPage{}, fmt.Errorf("store: list datasets: %w", err)
	}
	defer rows.Close()
	var p DatasetPage
	for rows.Next() {
		d, err := scanDataset(rows)
		if err != nil {
			return DatasetPage{}, fmt.Errorf("store: list datasets: %w", err)
		}
		p.Datasets = append(p.Datasets, d)
	}
	if err := rows.Err(); err != nil {
		return DatasetPage{}, fmt.Errorf("store: list datasets: %w", err)
	}
	more := len(p.Datasets) > limit
	if more {
		p.Datasets = p.Datasets[:limit]
	}
	if after > 0 {
		slices.Reverse(p.Datasets)
		p.HasNewer = more
	} else {
		p.HasOlder = more
	}
	if after > 0 || before > 0 {
		cond, edge := "id <= ?", after
		if before > 0 {
			cond, edge = "id >= ?", before
		}
		var one int
		err := s.r.QueryRowContext(ctx, "SELECT 1 FROM datasets WHERE user_id = ? AND deleted_at IS NULL AND "+cond+" LIMIT 1",
			userID, edge).Scan(&one)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return DatasetPage{}, fmt.Errorf("store: list datasets: %w", err)
		}
		if after > 0 {
			p.HasOlder = err == nil
		} else {
			p.HasNewer = err == nil
		}
	}
	return p, nil
}
