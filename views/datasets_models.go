package views

// DatasetList is the datasets page: the person's datasets, the upload form and samples.
type DatasetList struct {
	Items    []DatasetRow
	Samples  []SampleOption
	Upload   UploadForm
	OlderURL string // "" on the last page
	NewerURL string // "" on the first page
	// ChatMethods are the methods this backend offers that train on chat or completion
	// data, in words: "LoRA or full".
	ChatMethods string
}

// DatasetRow is one dataset in the list.
type DatasetRow struct {
	URL        string // /datasets/{id}
	Name       string
	Format     string // "chat", "completion", "preference"
	FormatTone string // the format badge's tone, the same for a format on every screen
	Rows       string // formatted, e.g. "1,204"
	Tokens     string // formatted estimate, e.g. "≈ 48.2k"
	Size       string // e.g. "1.4 MB"
	Created    string // e.g. "23 Nov 2026"
}

// SampleOption is a shipped sample dataset offered as "try with a sample".
type SampleOption struct {
	Format     string // posted as field "format" to /datasets/samples
	FormatTone string
	Name       string
	About      string
}

// UploadForm is the upload form and what went wrong with the last upload.
type UploadForm struct {
	Name      string   // what was typed in the optional name field
	MaxSize   string   // e.g. "100 MB"
	FileError string   // a message beside the file field (no file, too large, ...)
	Problems  []string // the first validation errors, each "line 41: ..." with the fix
	More      bool     // true when there were more problems than listed
}

// DatasetDetail is one dataset's page.
type DatasetDetail struct {
	Name       string
	Format     string
	FormatTone string
	Rows       string
	Tokens     string
	Size       string
	Created    string
	TokensNote string // how tokens are estimated, one sentence
	Histogram  []HistogramBar
	MaxSeqLen  int    // the chosen max sequence length (tokens)
	SeqLens    []int  // choices for MaxSeqLen, shown as links ?max_seq_len=N
	ShareOver  string // e.g. "3.2 % of rows are longer than 512 tokens"
	Preview    []string
	DeleteURL  string // POST here to delete
	NewRunURL  string // /runs/new?dataset={id}: "Fine-tune on this dataset"
	BaseURL    string // /datasets/{id}, for the max_seq_len links
}

// HistogramBar is one bucket of the row-length histogram.
type HistogramBar struct {
	Label  string // e.g. "≤ 64"
	Count  int
	Height int  // 0..20, bar height in twentieths of the tallest (CSS class bar-h-N)
	Over   bool // the bucket is longer than the chosen max sequence length
}
