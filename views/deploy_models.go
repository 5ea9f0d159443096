package views

// DeployButton is the Deploy action of one snapshot on the run page: a POST form, or
// (for snapshots that cannot be deployed) a disabled button with the reason.
type DeployButton struct {
	Action  string // POST /runs/{id}/snapshots/{sid}/deploy; "" when it cannot be deployed
	Refusal string // why not, shown instead of the form
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
}
