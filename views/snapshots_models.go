package views

// ContinueFrom is the snapshot a new run starts from, as the run form shows it.
type ContinueFrom struct {
	Label  string // "Run 3, snapshot at step 720"
	RunURL string // /runs/3, or "" when that run is no longer available
}

// ContinuedRunRow is a run started from one of this run's snapshots.
type ContinuedRunRow struct {
	Name   string // "Run 14"
	URL    string // /runs/14
	Step   string // the snapshot's step, "720"
	Status string
	Label  string // the status in words
	Tone   string // the status badge's tone
}
