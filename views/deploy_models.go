package views

// DeployButton is the Deploy action of one snapshot on the run page: a POST form.
type DeployButton struct {
	Action string // POST /runs/{id}/snapshots/{sid}/deploy
}

// Deployments is the deployments page.
type Deployments struct {
	Rows    []DeploymentRow
	BaseURL string // https://host, for the examples
	Example string // a curl call of the first live deployment (or a base model)
	KeysURL string
}

// DeploymentRow is one deployment.
type DeploymentRow struct {
	Model    string // the OpenAI model id
	Snapshot string // "run name · step 720"
	RunURL   string
	Created  string
	Status   string // label
	Tone     string // badge tone
	StopURL  string // POST, "" when not live
	Where    string // "This server (built-in model)" or "local backend, cpu"
	GPUTime  string // a worker deployment's GPU time so far ("" for none)
	Detail   string // why it failed or stopped, or what it is doing
	Log      string // a worker deployment's last log lines ("" for none)
}
