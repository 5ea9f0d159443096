package views

// RunAPI is the page that lets a person log metrics to a run from their own code.
type RunAPI struct {
	Name      string // "Run 12"
	RunURL    string // /runs/{id}
	CreateURL string // POST: make a new token (replacing the old one)
	HasToken  bool   // a token exists (it is never shown again)
	Token     string // the new token, shown once right after it was made
	Endpoint  string // absolute URL of POST /api/v1/runs/{id}/metrics
	Curl      string // a ready-to-run example
	Python    string
}

// apiRules sums up the metrics endpoint's contract (docs/worker-api.md) for the page.
const apiRules = `Names use lower-case letters, digits and _ . / - (at most 64). Values are numbers; send "NaN", "Infinity" or "-Infinity" for those and the chart marks them. Answers: 200 with {"accepted": n, "duplicates": m}; 400 names the first bad point; 429 means wait Retry-After seconds and send the batch again.`
