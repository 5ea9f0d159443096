package views

// RunList is the runs page: one page of the person's runs (newest first), the filters
// that chose it, and links to the pages either side.
type RunList struct {
	Items       []RunRow
	HasDatasets bool     // false: the empty state points to uploading a dataset first
	Filtered    bool     // a filter or search is on: an empty page says so instead of "no runs yet"
	Live        bool     // some run on this page has not ended
	LiveURL     string   // polled every 2 s while Live: answers the changed rows only (RunLiveRows)
	Metric      string   // the metric whose last, min and max the table shows; "" shows none
	Metrics     []string // metric names to choose from ("Show metric")
	Filter      RunListFilter
	OlderURL    string // "" on the last page
	NewerURL    string // "" on the first page
	FirstURL    string // the newest page with the same filters, "" when this is it
	TimeLabel   string // the time column: "GPU time", or "Compute time" on a backend without GPUs
	Methods     string // the methods this backend offers, in words: "LoRA, DPO or full"
}

// RunListFilter is the filter form above the list: current values and the choices.
type RunListFilter struct {
	Status   string
	Dataset  string // dataset id
	Method   string
	Query    string // name prefix
	Statuses []Option
	Datasets []Option
	Methods  []Option
}

// RunRow is one run in the list.
type RunRow struct {
	ID           string // the run's id: the value of its "compare" checkbox
	DOMID        string // "run-row-12": the live rows replace it by this id
	URL          string // /runs/{id}
	Name         string // "tiny-chat · lora · 7f3a", or what the person named it
	Tags         []string
	Model        string // base model name
	Method       string // the method in words, short: "LoRA", "Full"
	Dataset      string
	LearningRate string // "0.003"
	Epochs       string // "3"
	Status       string // queued, starting, running, succeeded, failed, cancelled (data-status, CSS class)
	Label        string // the status in words: "Running", "Failed"...
	Tone         string // the status badge's tone: "neutral", "accent", "success", "danger"
	Percent      int    // 0..100, the progress bar
	Progress     string // "360 / 720 steps", or "" before the first heartbeat
	ETA          string // "about 12 s left", "" when unknown or ended
	GPUTime      string // "1 min 04 s"
	TimeLabel    string // "GPU time" or "Compute time": the cell's label on phones
	Cost         string // with billing on, live runs: "$0.42", or "$0.42 of about $1.10"
	Created      string // "23 Nov 2026, 14:02"

	// The chosen metric (RunList.Metric), formatted; "—" when the run has none.
	MetricLast string
	MetricMin  string
	MetricMax  string
}

// RunLiveRows is the answer to the run list's poll: the rows that changed, each swapped
// in place by its id, and the poller itself with the runs still live (none: it stops).
type RunLiveRows struct {
	Metric  string
	Rows    []RunRow
	LiveURL string // "" when nothing on the page is live any more
}

// RunForm is the new-run form: what was chosen, the choices, and messages by field name
// (the form's field names: dataset_id, eval_dataset_id, base_model, method, epochs,
// learning_rate, batch_size, lora_rank, lora_alpha, max_seq_len, seed, gpu_type,
// validation_split, snapshot_every).
type RunForm struct {
	Values    RunFormValues
	Datasets  []Option // value = dataset id; Note carries format and rows
	Models    []Option
	Methods   []Option
	GPUTypes  []Option
	Backend   string            // the backend's name, shown as where the run will go ("local")
	Errors    map[string]string // field name -> message shown beside it
	FormError string            // shown above the form
	Rules     string            // which default metric rules the new run follows (metric_rules.templ)
	Action    string            // "/runs"
	Help      RunFormHelp       // the help that depends on the backend's hardware and models
	Continue  ContinueFrom      // the snapshot the run starts from, when Values.InitSnapshotID is set
	FromName  string            // "Start a similar run": the name of the run the values came from
	Blocked   string            // why billing stops new runs now ("" when they start)
	Estimate  RunEstimate
	Budget    bool // billing is on: the budget field is offered
}

// RunEstimate is what a run is expected to take and cost, shown above the start button
// and refreshed as the form changes.
type RunEstimate struct {
	Shown    bool   // a dataset is chosen and the epochs parse
	Time     string // "≈ 12 min 30 s of CPU time"
	Tokens   string // "1.2 M tokens (dataset x epochs) at 3,400 tokens/s"
	Basis    string // "measured on 4 finished runs" or "a default until a run of this model finishes"
	Cost     string // "$0.42" or ""
	CostNote string // "past the 2 h 10 min of included time left on Pro", "covered by your included time", "free on this server"
}

// RunFormHelp is the help text that differs by backend: what the built-in CPU models need
// is not what a large model on a GPU needs.
type RunFormHelp struct {
	Dataset      string
	BaseModel    string
	Method       string
	LearningRate string
	BatchSize    string
	LoRA         string // the suffix of the LoRA fields' help: which methods use them
	Hardware     string // the section's description
	GPUType      string
	GPULegend    string // "GPU type", or "Hardware" on a backend without GPUs
}

// RunFormValues are the field values as strings, exactly as typed or defaulted.
type RunFormValues struct {
	DatasetID       string
	EvalDatasetID   string // "" = hold out ValidationSplit percent instead
	BaseModel       string
	Method          string
	Epochs          string
	LearningRate    string
	BatchSize       string
	LoRARank        string
	LoRAAlpha       string
	MaxSeqLen       string
	Seed            string
	GPUType         string
	ValidationSplit string
	SnapshotEvery   string
	InitSnapshotID  string // "" = start from the base model; else the snapshot to continue from
	BudgetUSD       string // "" = no cap
}

// Option is one choice of a select or radio group.
type Option struct {
	Value string
	Label string
	Note  string // one line under or beside the label
}

// RunDetail is one run's page.
type RunDetail struct {
	ID          int64
	Name        string // "tiny-chat · lora · 7f3a"
	Labels      RunLabelsForm
	EventsURL   string // /runs/{id}/events (SSE)
	Live        RunLive
	Rules       RunRuleFirings // metric rules that fired, and the link to the run's rules
	Checkpoints Checkpoints    // the checkpoint leaderboard
	Config      []ConfigItem
	RetryOf     string // "/runs/{id}" of the run this retries, or ""
	ExportCSV   string // /runs/{id}/metrics.csv
	APIURL      string // /runs/{id}/api: log metrics from the person's own code
	// Metrics is the charts' initial data, rendered as the JSON island #run-metrics-data:
	// {run_id, after_seq, history_url, created_at_ms, started_at_ms, series: [SeriesHistory]}
	// (see static/js/run-chart.js). nil renders no island: the charts start empty.
	Metrics any
}

// RunLive is the part of the run page that the server re-renders and sends over SSE
// whenever something changes: status, progress, timeline, log tail and snapshots.
type RunLive struct {
	Status     string // the raw status (data-status, CSS classes)
	Label      string
	Tone       string // the status badge's tone
	Sentence   string // what the run is doing, in words; "" once it ended other than succeeded
	Failed     bool   // show the failure callout with Reason
	Cancelled  bool   // show the cancellation callout with Reason
	Reason     string // why it failed or was cancelled
	RetryURL   string // POST; set once a run failed, so the callout offers a retry without a reload
	Cancelling bool   // a cancel was asked and the worker has not confirmed it yet
	Percent    int
	Progress   string // "360 / 720 steps"
	ETA        string
	TimeLabel  string // "GPU time", or "Compute time" on a backend without GPUs
	GPUTime    string
	Cost       string // with billing on: "$0.42", or "$0.42 of about $1.10" while it runs
	Final      bool
	Actions    RunActions // the header's buttons, which follow the status
	Timeline   []TimelineItem
	Logs       []LogItem // the last lines, oldest first
	Snapshots  []SnapshotRow
	Continued  []ContinuedRunRow // runs started from this run's snapshots
	Queue      *RunQueue         // while queued: its place and estimated start

	// CancelTitle heads the cancellation callout: "This run was cancelled", or "This run
	// was stopped" when billing stopped it cleanly.
	CancelTitle string
	// CostWarning: the projected total passes the run's budget cap ("" when not).
	CostWarning string
	// Rules is the metric-rule banner, set on live updates once a rule fired (RunRulesLive).
	Rules RunRuleFirings
	// Checkpoints, on live updates once the run has snapshots, replaces a Checkpoints card
	// that lists fewer (out of band), so new snapshots show there without a reload.
	Checkpoints *Checkpoints
}

// LogItem is one log line; ID is stable (the line's id) so a live update keeps the lines
// already shown and adds only the new ones.
type LogItem struct {
	ID   string
	Text string
}

// RunActions are the run page header's buttons; a "" URL hides its button.
type RunActions struct {
	SimilarURL string // GET /runs/new?from={id}: the form filled with this run's settings
	CancelURL  string // POST; while the run may still be cancelled
	RetryURL   string // POST; once the run has ended
	DeleteURL  string // POST
}

// ConfigItem is one line of the configuration summary.
type ConfigItem struct {
	Label string
	Value string
}

// TimelineItem is one status change.
type TimelineItem struct {
	Status string // for the dot colour
	Label  string // "Queued", "Running", "Cancel requested"...
	Note   string
	URL    string // a link the note refers to ("Continued from run 3…"), or ""
	At     string // "14:02:11"
	When   string // ISO 8601 for <time datetime>
}

// SnapshotRow is one saved checkpoint.
type SnapshotRow struct {
	Step        string // "720"
	Final       bool
	Size        string // "226.4 kB"
	SHA256      string // short prefix shown; full in title
	Created     string
	DownloadURL string // /runs/{id}/snapshots/{sid}/download
	DeleteURL   string // POST /runs/{id}/snapshots/{sid}/delete, after the confirmation dialog
	ContinueURL string // /runs/new?snapshot={sid}: a new run that starts from these weights
	Deploy      DeployButton
}

// RunLabelsForm shows a run's tags and notes and edits them with its name
// (POST Action, fields name, tags, notes).
type RunLabelsForm struct {
	Action string // /runs/{id}/edit
	Name   string
	Tags   string // as typed: "baseline, lr-sweep"
	Notes  string
	Shown  []string          // the stored tags, as chips
	Errors map[string]string // field -> message; the form opens when there are any
}

// Compare is the compare page: one metric of several runs on one chart.
type Compare struct {
	Metric  string
	Metrics []string // metric names to choose from
	Runs    []CompareRun
	// Data is the JSON island #compare-data: {metric, runs: [{run_id, label, url, history_url,
	// started_at_ms (optional), series: SeriesHistory or null, and for a run that has not
	// ended: live (its status in words), events_url (its event stream, after the island's
	// last point)}]}. The chart is drawn when at least two runs are checked.
	Data   any
	Action string // "/compare"
	// Configs is the configuration table of the chosen runs: a column per run, a row per
	// setting, rows whose values differ marked.
	Configs ConfigTable
	// Missing names the checked runs that logged no point of Metric, so the legend can say
	// why they have no line.
	Missing []string
}

// ConfigTable compares settings side by side.
type ConfigTable struct {
	Runs []ConfigRun // column heads
	Rows []ConfigRow
}

// ConfigRun heads one column of the configuration table.
type ConfigRun struct {
	ID   string // the run's id, for the page's script to find it
	Name string
	Live string // the status of a run that has not ended ("Running"), else ""
}

// ConfigRow is one setting across the compared runs.
type ConfigRow struct {
	Label   string
	Values  []string
	Differs bool
}

// CompareRun is one run the compare form offers.
type CompareRun struct {
	ID      string
	Label   string // "Run 1 · LoRA · Byte MLP base"
	URL     string // /runs/{id}
	Checked bool
}
