package protocol

// The deployment half of the worker API: a serve job started for a deployment speaks it
// under DeployPathPrefix + "{id}" (docs/worker-api.md, "Deployments").

// DeployPathPrefix is where a deployment's worker API lives.
const DeployPathPrefix = "/api/v1/worker/deployments/"

// Final statuses a serve job may report in POST /finish.
const (
	ServeStopped = "stopped"
	ServeFailed  = "failed"
)

// CodeDeploymentEnded answers a deployment whose job already ended.
const CodeDeploymentEnded = "deployment_ended"

// ServeJob is the answer to GET /job of a deployment.
type ServeJob struct {
	DeploymentID int64  `json:"deployment_id"`
	Model        string `json:"model"` // the model id clients send; the server answers it in responses
	BaseModel    string `json:"base_model"`
	Method       string `json:"method"` // how the snapshot was trained: lora and qlora snapshots hold adapters
	GPUType      string `json:"gpu_type"`
	// Snapshot is the weights to serve: the ZIP the training worker uploaded.
	Snapshot InitSnapshot `json:"snapshot"`
	// APIKey is the secret the inference server must require as "Authorization: Bearer"
	// on every request; only the tunelab server knows it besides the job.
	APIKey                   string  `json:"api_key"`
	MaxTokens                int     `json:"max_tokens"` // the most tokens one answer may generate
	HeartbeatIntervalSeconds float64 `json:"heartbeat_interval_seconds"`
}

// ServeHeartbeat is the body of POST /heartbeat of a deployment.
type ServeHeartbeat struct {
	// URL is where the inference server answers (http or https, no path beyond "/"); ""
	// while it is still loading.
	URL     string `json:"url"`
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail"` // what is wrong when not healthy, or what it is doing
}

// ServeHeartbeatReply is the answer to POST /heartbeat of a deployment.
type ServeHeartbeatReply struct {
	// Stop asks the job to shut its server down and finish with "stopped".
	Stop bool `json:"stop"`
}
