// Package store owns every SQL statement of tunelab. It keeps one writer connection
// (BEGIN IMMEDIATE, synchronous FULL) and a pool of read-only connections on the same file,
// with every pragma in the DSN so each pooled connection gets them.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
)

// ErrNotFound is returned when a row asked for does not exist (or is not the caller's).
var ErrNotFound = errors.New("store: not found")

// Store is the database of one tunelab server.
type Store struct {
	w      *sql.DB // the single writer
	r      *sql.DB // read-only pool
	now    func() time.Time
	argon2 Argon2Params
	meter  int64 // MeterInterval in whole seconds

	dummyHash string // verified against for unknown emails, so they cost what a wrong password costs

	stmts sync.Map // query text -> *sql.Stmt on the reader pool, see cachedStmt

	// Metric ingest (group commit), see metrics_ingest.go.
	ingest       chan *ingestRequest
	ingestDone   chan struct{}
	ingestMu     sync.Mutex // guards the per-run counts and closing the queue
	ingestPerRun map[int64]int
	ingestClosed bool
	ingestOnce   sync.Once
	quotas       Quotas
	ingestStmts  map[string]*sql.Stmt // the append path's statements, prepared on the writer
	stats        ingestStats
}

// Options tunes Open; the zero value is what production uses.
type Options struct {
	Now     func() time.Time // clock for created_at and expiry checks; time.Now when nil
	Readers int              // size of the read pool; 2×GOMAXPROCS (at least 4) when 0
	Argon2  Argon2Params     // password hashing cost; DefaultArgon2 when zero
	Quotas  Quotas           // per-run metric limits; zero fields take the defaults
	// MeterInterval is how often a running run's GPU seconds so far are written to the
	// usage ledger (TUNELAB_METER_INTERVAL); DefaultMeterInterval when zero.
	MeterInterval time.Duration
}

// DefaultMeterInterval is how often a long run reports partial usage.
const DefaultMeterInterval = 10 * time.Minute

// common pragmas for both pools. synchronous=FULL: an acknowledged write (billing, usage,
// metrics) must survive a power loss, not only a crash. _stmt_cache_size keeps each
// connection's last 64 statements prepared (go-sqlite3 otherwise prepares every query
// anew; seeding 10,000 runs took 23 s instead of 30).
const commonPragmas = "_busy_timeout=5000&_foreign_keys=1&_synchronous=FULL&_secure_delete=1&_cache_size=-16000&_stmt_cache_size=64"

// IsDiskFull reports whether err comes from SQLite finding the disk full (or the database
// at its size limit). The failed transaction was rolled back whole: nothing of it is kept.
func IsDiskFull(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrFull
}

// SetMaxPages bounds the database file to n pages (PRAGMA max_page_count on the writer):
// past it every write that needs a new page fails as on a full disk. Tests use it to play a
// full disk and its recovery.
func (s *Store) SetMaxPages(ctx context.Context, n int64) error {
	_, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", n))
	return err
}

// PageCount is how many pages the database file has now.
func (s *Store) PageCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.w.QueryRowContext(ctx, "PRAGMA page_count").Scan(&n)
	return n, err
}

// Open opens (creating if needed) the database at path, applies pending migrations and
// checks that every pragma took effect.
func Open(ctx context.Context, path string, opt Options) (*Store, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("store: database path %q must not contain '?' or '#'", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: resolve path: %w", err)
	}
	w, err := sql.Open("sqlite3", "file:"+abs+"?_journal_mode=WAL&_txlock=immediate&"+commonPragmas)
	if err != nil {
		return nil, fmt.Errorf("store: open writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, now: opt.Now, argon2: opt.Argon2, quotas: opt.Quotas}
	if s.quotas.SeriesPerRun <= 0 {
		s.quotas.SeriesPerRun = DefaultSeriesPerRun
	}
	if s.quotas.PointsPerRun <= 0 {
		s.quotas.PointsPerRun = DefaultPointsPerRun
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.argon2 == (Argon2Params{}) {
		s.argon2 = DefaultArgon2
	}
	s.meter = int64(DefaultMeterInterval / time.Second)
	if opt.MeterInterval > 0 {
		s.meter = max(int64(opt.MeterInterval/time.Second), 1)
	}
	if s.dummyHash, err = hashPassword("not a real password", s.argon2); err != nil {
		w.Close()
		return nil, err
	}
	// The writer must create the file and switch it to WAL before readers open it.
	if err := checkPragmas(ctx, w, "writer"); err != nil {
		w.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := s.prepareIngest(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite3", "file:"+abs+"?_query_only=1&"+commonPragmas)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open readers: %w", err)
	}
	n := opt.Readers
	if n == 0 {
		n = max(4, 2*runtime.GOMAXPROCS(0))
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r
	s.ingest, s.ingestDone = make(chan *ingestRequest, IngestQueue), make(chan struct{})
	s.ingestPerRun = map[int64]int{}
	go s.runIngest()
	if err := checkPragmas(ctx, r, "reader"); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.rebuildMissingRollups(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// checkPragmas refuses to run on a connection whose settings are not the ones we rely on.
func checkPragmas(ctx context.Context, db *sql.DB, pool string) error {
	want := []struct {
		pragma string
		value  string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", "5000"},
		{"secure_delete", "1"},
		{"quick_check", "ok"},
	}
	for _, p := range want {
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
			return fmt.Errorf("store: read pragma %s on %s: %w", p.pragma, pool, err)
		}
		if !strings.EqualFold(got, p.value) {
			return fmt.Errorf("store: pragma %s on %s is %q, want %q", p.pragma, pool, got, p.value)
		}
	}
	return nil
}

// Close finishes queued metric batches, then closes both pools.
func (s *Store) Close() error {
	if s.ingest != nil {
		s.stopIngest()
	}
	var errR error
	s.stmts.Range(func(k, st any) bool {
		st.(*sql.Stmt).Close()
		s.stmts.Delete(k)
		return true
	})
	if s.r != nil {
		errR = s.r.Close()
	}
	return errors.Join(errR, s.w.Close())
}

// Ping checks that both the reader pool and the writer answer.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("store: ping readers: %w", err)
	}
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping writer: %w", err)
	}
	return nil
}

// tx runs fn in one write transaction (BEGIN IMMEDIATE through the single writer).
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ms is the storage form of every timestamp: Unix milliseconds, UTC.
func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }
