package views

// Playground is the playground page: the form, the outputs of the prompt being run (none
// before the first), and the history of the person's prompts.
type Playground struct {
	Action          string // the form's POST address
	Values          PlaygroundValues
	Errors          map[string]string // by field name
	FormError       string
	Modes           []PlaygroundMode
	Models          []PlaygroundModel // built-in models and snapshots that generate here
	NeedsDeployment []string          // snapshots of GPU runs, named; not selectable
	MaxTokensCap    string
	Outputs         []PlaygroundOutput
	History         []PlaygroundHistoryRow
}

// PlaygroundValues are the form's fields as typed.
type PlaygroundValues struct {
	Mode        string // "completion" or "chat"
	System      string
	Prompt      string
	ModelA      string
	ModelB      string // "" compares nothing
	Temperature string
	TopP        string
	MaxTokens   string
	Stop        string // one per line, \n written as backslash-n
	Seed        string
}

// PlaygroundModel is one option of the model pickers.
type PlaygroundModel struct {
	Value, Label, Group string
}

// PlaygroundOutput is one model's streamed answer: the element with StreamURL fetches
// the stream, appends its text to #TargetID and its end to #StatusID.
type PlaygroundOutput struct {
	Slot      string // "a" or "b"
	Title     string
	StreamURL string
	TargetID  string
	StatusID  string
	Prompt    string // what the model continues, as the model sees it
	// Unavailable, when set, says why this model cannot answer (its snapshot was
	// deleted); no stream is fetched.
	Unavailable string
}

// PlaygroundHistoryRow is one earlier prompt.
type PlaygroundHistoryRow struct {
	When, Mode, Models, Settings, Excerpt string
	RunURL                                string
}

// PlaygroundMode is one choice of how the prompt is read.
type PlaygroundMode struct {
	Value, Label, Help string
	Checked            bool
}
