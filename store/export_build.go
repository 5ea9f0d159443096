package store

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"
)

// ExportSchemaVersion is the version of the ZIP's layout (docs/export.md).
const ExportSchemaVersion = 1

// DefaultExportSnapshotLimit is how many bytes of snapshots an export carries; the rest
// are listed with their download links.
const DefaultExportSnapshotLimit = 512 << 20

// exportedTables says where each table holding a person's data goes in the export, and
// exportExcluded why a table is left out. TestEveryTableIsExportedOrExcluded fails for a
// table in neither, so a new table needs a decision.
var exportedTables = map[string]string{
	"users":               "account.json",
	"security_events":     "security_events.json",
	"session_devices":     "sessions.json",
	"api_keys":            "api_keys.json",
	"audit_log":           "audit_log.json",
	"billing_accounts":    "billing.json",
	"usage":               "billing.json",
	"usage_monthly":       "billing.json",
	"runs":                "runs.json",
	"run_events":          "runs/<id>/timeline.json",
	"run_logs":            "runs/<id>/logs.txt",
	"metric_series":       "runs/<id>/metrics.csv",
	"metric_points":       "runs/<id>/metrics.csv",
	"metric_blocks":       "runs/<id>/metrics.csv",
	"datasets":            "datasets.json, datasets/<id>.jsonl",
	"snapshots":           "snapshots.json, snapshots/",
	"user_totp":           "account.json (whether two-factor sign-in is on; never the secret)",
	"exports":             "exports.json",
	"oauth_identities":    "sign_in_methods.json",
	"sign_in_devices":     "sign_in_devices.json",
	"playground_prompts":  "playground_prompts.json",
	"deployments":         "deployments.json",
	"fine_tuning_jobs":    "fine_tuning_jobs.json",
	"snapshot_evals":      "snapshot_evals.json",
	"consent_records":     "consents.json",
	"account_suspensions": "account.json (when an admin suspended the account, if one did)",
}

var exportExcluded = map[string]string{
	"sessions":             "hashes of session tokens: secrets, meaningless outside the server (devices are in sessions.json)",
	"ended_sessions":       "hashes of ended session tokens, no account",
	"password_resets":      "hashes of one-time reset links, short-lived secrets",
	"email_verifications":  "hashes of one-time confirmation links, short-lived secrets",
	"recovery_codes":       "hashes of two-factor recovery codes: secrets",
	"metric_rollups":       "summaries computed from metric_points, which are exported in full",
	"metric_seq_ranges":    "ingest bookkeeping (sequence numbers), no data of its own",
	"metric_rules":         "settings (which metric rules apply), shown on the settings and run pages; no content",
	"metric_rule_firings":  "each firing is also a note on its run's timeline (runs/<id>/timeline.json)",
	"run_counts":           "counts computed from runs",
	"meter_outbox":         "the same GPU seconds as usage, on their way to Stripe",
	"stripe_events":        "Stripe event ids, no account",
	"security_event_kinds": "the list of event kinds",
	"schema_migrations":    "migration bookkeeping",
	"mail_queue":           "mails already delivered to the person (bodies erased once sent)",
	"email_changes":        "hashes of one-time email change links, short-lived secrets",
	"queue_turns":          "queue bookkeeping: when the person's last run started (runs.json has every start)",
	"analytics_events":     "never tied to an account: a visitor code from a daily salt that is not kept",
	"analytics_daily":      "daily totals over all visitors, no account",
	"security_event_daily": "daily counts per kind and country, no account",
}

// ExportOptions tunes BuildExport.
type ExportOptions struct {
	SnapshotLimit int64  // bytes of snapshots carried; 0: DefaultExportSnapshotLimit
	BaseURL       string // for the links of snapshots left out
	// Invoices (billing on) is written as invoices.json: the person's invoices as Stripe
	// lists them, with their hosted pages. nil: no file (billing off).
	Invoices any
}

type manifestFile struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

type exportZip struct {
	zw    *zip.Writer
	files []manifestFile
}

type hashCount struct {
	h hash.Hash
	n int64
}

func (h *hashCount) Write(p []byte) (int, error) {
	h.h.Write(p)
	h.n += int64(len(p))
	return len(p), nil
}

// create starts a file; close with done.
func (z *exportZip) create(path string, fill func(io.Writer) error) error {
	w, err := z.zw.Create(path)
	if err != nil {
		return err
	}
	hc := &hashCount{h: sha256.New()}
	if err := fill(io.MultiWriter(w, hc)); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	z.files = append(z.files, manifestFile{Path: path, Bytes: hc.n, SHA256: hex.EncodeToString(hc.h.Sum(nil))})
	return nil
}

func (z *exportZip) json(path string, v any) error {
	return z.create(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
}

// rowsJSON reads a query's rows as objects keyed by column name (BLOBs as hex).
func (s *Store) rowsJSON(ctx context.Context, q string, args ...any) ([]map[string]any, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := []map[string]any{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			if b, ok := vals[i].([]byte); ok {
				vals[i] = hex.EncodeToString(b)
			}
			if str, ok := vals[i].(string); ok && c == "config" && json.Valid([]byte(str)) {
				vals[i] = json.RawMessage(str) // a run's settings, as an object
			}
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// BuildExport writes export id's ZIP (docs/export.md) into the vault, encrypted like every
// file there, and returns its file id and size. Progress goes to the export row.
func (s *Store) BuildExport(ctx context.Context, v *Vault, id int64, o ExportOptions) (string, int64, error) {
	e, err := s.ExportByID(ctx, id)
	if err != nil {
		return "", 0, err
	}
	if o.SnapshotLimit <= 0 {
		o.SnapshotLimit = DefaultExportSnapshotLimit
	}
	vw, err := v.Create()
	if err != nil {
		return "", 0, err
	}
	defer vw.Abort() // no-op after Commit
	z := &exportZip{zw: zip.NewWriter(vw)}
	uid := e.UserID
	q := func(path, query string, args ...any) error {
		rows, err := s.rowsJSON(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("export %s: %w", path, err)
		}
		return z.json(path, rows)
	}
	progress := func(p int) { s.SetExportProgress(ctx, id, p) }
	progress(1)

	steps := []struct{ path, query string }{
		{"account.json", `SELECT u.id, u.email, u.created_at, u.terms_version, u.terms_accepted_at, u.email_verified_at,
			u.run_mails AS run_finished_mails, u.product_mails AS product_update_mails, u.display_name, u.is_admin,
			EXISTS (SELECT 1 FROM user_totp t WHERE t.user_id = u.id AND t.enabled_at IS NOT NULL) AS two_factor_on,
			(SELECT suspended_at FROM account_suspensions a WHERE a.user_id = u.id) AS suspended_at
			FROM users u WHERE u.id = ?`},
		{"sign_in_methods.json", "SELECT provider, email, created_at, last_used_at FROM oauth_identities WHERE user_id = ? ORDER BY id"},
		{"sign_in_devices.json", "SELECT device, first_seen, last_seen FROM sign_in_devices WHERE user_id = ? ORDER BY first_seen"},
		{"playground_prompts.json", `SELECT created_at, mode, system, prompt, model_a, model_b, temperature, top_p, max_tokens, stop, seed
			FROM playground_prompts WHERE user_id = ? ORDER BY id`},
		{"deployments.json", `SELECT d.name, d.snapshot_id, d.created_at, d.stopped_at, d.kind, d.backend, d.gpu_type, d.ended_at, d.failed, d.reason, d.log
			FROM deployments d WHERE d.user_id = ? ORDER BY d.id`},
		{"fine_tuning_jobs.json", `SELECT j.run_id, j.model, j.suffix, j.metadata, j.fine_tuned_model, j.deployed_at FROM fine_tuning_jobs j
			JOIN runs r ON r.id = j.run_id WHERE j.user_id = ? AND r.deleted_at IS NULL ORDER BY j.run_id`},
		{"snapshot_evals.json", `SELECT run_id, snapshot_id, dataset_id, status, rows, eval_loss, exact_match, contains, error, updated_at
			FROM snapshot_evals WHERE user_id = ? ORDER BY run_id, snapshot_id, set_key`},
		{"consents.json", `SELECT id, created_at, banner_version, text_version, granted, denied, source, previous_id
			FROM consent_records WHERE user_id = ? ORDER BY created_at`},
		{"security_events.json", "SELECT kind, ip, user_agent, created_at FROM security_events WHERE user_id = ? ORDER BY id"},
		{"sessions.json", "SELECT user_agent, ip, created_at, last_seen FROM session_devices WHERE user_id = ? ORDER BY id"},
		{"api_keys.json", "SELECT id, name, prefix, created_at, expires_at, last_used_at, revoked_at FROM api_keys WHERE user_id = ? ORDER BY id"},
		{"audit_log.json", "SELECT at, action, target, actor_id = ? AS by_you FROM audit_log WHERE subject_id = ? OR actor_id = ? ORDER BY id"},
		{"exports.json", "SELECT id, state, created_at, ready_at, expires_at, downloaded_at FROM exports WHERE user_id = ? ORDER BY id"},
		{"runs.json", `SELECT id, name, tags, notes, status, reason, config, backend, dataset_id, eval_dataset_id, retry_of,
			continued_from_run, continued_from_step, step, total_steps, created_at, first_heartbeat_at, finished_at
			FROM runs WHERE user_id = ? AND deleted_at IS NULL ORDER BY id`},
		{"datasets.json", `SELECT id, name, format, size_bytes, row_count, est_tokens, created_at FROM datasets
			WHERE user_id = ? AND deleted_at IS NULL ORDER BY id`},
	}
	for _, st := range steps {
		var args []any
		switch st.path {
		case "audit_log.json":
			args = []any{uid, uid, uid}
		default:
			args = []any{uid}
		}
		if err := q(st.path, st.query, args...); err != nil {
			return "", 0, err
		}
	}
	// Billing references: the Stripe ids, the usage ledger and monthly totals.
	billing := map[string]any{}
	for key, query := range map[string]string{
		"account":         "SELECT customer_id, subscription_id, subscription_status, price_id, period_start, period_end, cancel_at_period_end, monthly_cap_cents FROM billing_accounts WHERE user_id = ?",
		"usage":           "SELECT u.run_id, u.seq, u.seconds, u.ts, u.deployment_id FROM usage u JOIN runs r ON r.id = u.run_id WHERE r.user_id = ? ORDER BY u.run_id, u.seq",
		"usage_by_period": "SELECT period, seconds FROM usage_monthly WHERE user_id = ? ORDER BY period",
	} {
		rows, err := s.rowsJSON(ctx, query, uid)
		if err != nil {
			return "", 0, fmt.Errorf("export billing: %w", err)
		}
		billing[key] = rows
	}
	if err := z.json("billing.json", billing); err != nil {
		return "", 0, err
	}
	if o.Invoices != nil {
		if err := z.json("invoices.json", o.Invoices); err != nil {
			return "", 0, err
		}
	}
	progress(10)

	runs, err := s.ids(ctx, "SELECT id FROM runs WHERE user_id = ? AND deleted_at IS NULL ORDER BY id", uid)
	if err != nil {
		return "", 0, err
	}
	datasets, err := column[string](ctx, s, "SELECT id || ' ' || file_id FROM datasets WHERE user_id = ? AND deleted_at IS NULL ORDER BY id", uid)
	if err != nil {
		return "", 0, err
	}
	total := len(runs) + len(datasets) + 1
	done := 0
	step := func() { done++; progress(10 + 85*done/total) }
	for _, rid := range runs {
		if err := q(fmt.Sprintf("runs/%d/timeline.json", rid), "SELECT status, note, at FROM run_events WHERE run_id = ? ORDER BY id", rid); err != nil {
			return "", 0, err
		}
		if err := z.create(fmt.Sprintf("runs/%d/logs.txt", rid), func(w io.Writer) error { return s.exportLogs(ctx, w, rid) }); err != nil {
			return "", 0, err
		}
		if err := z.create(fmt.Sprintf("runs/%d/metrics.csv", rid), func(w io.Writer) error { return s.exportMetrics(ctx, w, rid) }); err != nil {
			return "", 0, err
		}
		step()
	}
	for _, d := range datasets {
		var did int64
		var file string
		fmt.Sscanf(d, "%d %s", &did, &file)
		if err := z.create(fmt.Sprintf("datasets/%d.jsonl", did), func(w io.Writer) error { return copyVault(v, file, w) }); err != nil {
			return "", 0, err
		}
		step()
	}
	if err := s.exportSnapshots(ctx, v, z, e, o); err != nil {
		return "", 0, err
	}
	step()
	manifest := map[string]any{
		"schema_version": ExportSchemaVersion,
		"created_at":     s.now().UTC().Format(time.RFC3339),
		"account_id":     uid,
		"files":          z.files,
		"excluded":       exportExcluded,
	}
	if err := z.json("manifest.json", manifest); err != nil {
		return "", 0, err
	}
	if err := z.zw.Close(); err != nil {
		return "", 0, err
	}
	size := vw.Size()
	fileID, err := vw.Commit()
	if err != nil {
		return "", 0, err
	}
	return fileID, size, nil
}

func copyVault(v *Vault, fileID string, w io.Writer) error {
	rc, err := v.Open(fileID)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

func (s *Store) exportLogs(ctx context.Context, w io.Writer, runID int64) error {
	rows, err := s.r.QueryContext(ctx, "SELECT line FROM run_logs WHERE run_id = ? ORDER BY id", runID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if _, err := io.WriteString(w, line+"\n"); err != nil {
			return err
		}
	}
	return rows.Err()
}

// exportMetrics writes every stored point of a run at full resolution, series by name,
// steps in order (point rows and blocks merged).
func (s *Store) exportMetrics(ctx context.Context, w io.Writer, runID int64) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"metric", "step", "value", "kind", "time_ms"})
	err := s.ExportMetrics(ctx, runID, func(p MetricPoint) error {
		val := ""
		if p.Kind == KindFinite {
			val = strconv.FormatFloat(p.Value, 'g', -1, 64)
		}
		return cw.Write([]string{p.Name, strconv.Itoa(p.Step), val, p.Kind, strconv.FormatInt(ms(p.At), 10)})
	})
	if err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// exportSnapshots carries snapshots up to the size limit and lists the rest with links.
func (s *Store) exportSnapshots(ctx context.Context, v *Vault, z *exportZip, e Export, o ExportOptions) error {
	uid := e.UserID
	rows, err := s.rowsJSON(ctx, `SELECT sn.id, sn.run_id, sn.step, sn.final, sn.size_bytes, sn.sha256, sn.created_at, sn.file_id
		FROM snapshots sn JOIN runs r ON r.id = sn.run_id WHERE r.user_id = ? AND r.deleted_at IS NULL AND sn.deleted_at IS NULL
		ORDER BY sn.run_id, sn.step`, uid)
	if err != nil {
		return err
	}
	var carried int64
	for _, row := range rows {
		file := row["file_id"].(string)
		delete(row, "file_id")
		size := row["size_bytes"].(int64)
		if carried+size <= o.SnapshotLimit {
			path := fmt.Sprintf("snapshots/run-%d-step-%d.safetensors", row["run_id"], row["step"])
			if err := z.create(path, func(w io.Writer) error { return copyVault(v, file, w) }); err != nil {
				return err
			}
			carried += size
			row["path"] = path
			continue
		}
		// Valid while the export is: signed in as the owner, for ExportLinkTTL.
		row["download_url"] = fmt.Sprintf("%s/settings/export/%d/snapshots/%d", o.BaseURL, e.ID, row["id"])
	}
	return z.json("snapshots.json", rows)
}
