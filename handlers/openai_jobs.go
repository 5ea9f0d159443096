package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"tunelab/store"
	"tunelab/trainer"
	"tunelab/views"
)

// /v1/fine_tuning/jobs (docs/openai.md): every run is a job, "ftjob-<run id>". A job
// made here becomes a run through the same checks as the run form (parseRun: ranges, what
// the backend offers, the datasets' formats; then billing, the queued-runs quota and
// CreateRun). What a run has no place for (suffix, metadata) is kept in fine_tuning_jobs,
// with the deploy on success (openai_jobs_deploy.go).

// openaiJob is a job as OpenAI describes it.
type openaiJob struct {
	ID              string            `json:"id"`
	Object          string            `json:"object"`
	CreatedAt       int64             `json:"created_at"`
	Error           *openaiJobError   `json:"error"`
	FineTunedModel  *string           `json:"fine_tuned_model"`
	FinishedAt      *int64            `json:"finished_at"`
	Hyperparameters jobHyperparams    `json:"hyperparameters"`
	Model           string            `json:"model"`
	OrganizationID  string            `json:"organization_id"`
	ResultFiles     []string          `json:"result_files"`
	Seed            int64             `json:"seed"`
	Status          string            `json:"status"`
	TrainedTokens   *int64            `json:"trained_tokens"`
	TrainingFile    string            `json:"training_file"`
	ValidationFile  *string           `json:"validation_file"`
	EstimatedFinish *int64            `json:"estimated_finish"`
	Integrations    []any             `json:"integrations"`
	Metadata        map[string]string `json:"metadata"`
	Method          jobMethod         `json:"method"`
	UserProvidedSfx *string           `json:"user_provided_suffix"`
}

type openaiJobError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
}

type jobHyperparams struct {
	BatchSize              int     `json:"batch_size"`
	LearningRateMultiplier float64 `json:"learning_rate_multiplier"`
	NEpochs                int     `json:"n_epochs"`
}

type jobMethod struct {
	Type       string          `json:"type"`
	Supervised *jobMethodHyper `json:"supervised,omitempty"`
	DPO        *jobMethodHyper `json:"dpo,omitempty"`
}

type jobMethodHyper struct {
	Hyperparameters jobHyperparams `json:"hyperparameters"`
}

func jobID(runID int64) string { return "ftjob-" + strconv.FormatInt(runID, 10) }

func parseJobID(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "ftjob-"), 10, 64)
	return n, err == nil && n > 0 && strings.HasPrefix(s, "ftjob-")
}

// jobStatus maps a run's status to OpenAI's. Files are validated when uploaded, so a job
// is never validating_files; a run whose cancel was asked for is cancelled at once (it
// stops at its next heartbeat and makes no model).
func jobStatus(run store.Run) string {
	switch {
	case run.Status == store.RunQueued:
		return "queued"
	case run.Status == store.RunStarting || run.Status == store.RunRunning:
		if run.CancelRequested {
			return "cancelled"
		}
		return "running"
	}
	return string(run.Status) // succeeded, failed, cancelled: the same words
}

// learningRateMultiplier is the run's learning rate over the backend's default.
func (a *app) learningRateMultiplier(lr float64) float64 {
	def := a.runs.Backend.Offer().Defaults.LearningRate
	if def <= 0 {
		return lr
	}
	return math.Round(lr/def*1e6) / 1e6
}

func (a *app) openaiJobJSON(run store.Run, extra store.FineTuneJob, hasExtra bool) openaiJob {
	c := run.Config
	hp := jobHyperparams{BatchSize: c.BatchSize, LearningRateMultiplier: a.learningRateMultiplier(c.LearningRate), NEpochs: c.Epochs}
	j := openaiJob{ID: jobID(run.ID), Object: "fine_tuning.job", CreatedAt: run.CreatedAt.Unix(), Hyperparameters: hp,
		Model: c.BaseModel, OrganizationID: "user-" + strconv.FormatInt(run.UserID, 10), ResultFiles: []string{}, Seed: c.Seed,
		Status: jobStatus(run), TrainingFile: fileID(run.DatasetID), Integrations: []any{}}
	if run.EvalDatasetID != 0 {
		v := fileID(run.EvalDatasetID)
		j.ValidationFile = &v
	}
	if !run.FinishedAt.IsZero() {
		t := run.FinishedAt.Unix()
		j.FinishedAt = &t
	}
	if run.Status == store.RunFailed {
		j.Error = &openaiJobError{Code: "run_failed", Message: run.Reason}
	}
	if c.Method == store.MethodDPO {
		j.Method = jobMethod{Type: "dpo", DPO: &jobMethodHyper{hp}}
	} else {
		j.Method = jobMethod{Type: "supervised", Supervised: &jobMethodHyper{hp}}
	}
	if hasExtra {
		if extra.Model != "" {
			j.Model = extra.Model
		}
		j.Metadata = extra.Metadata
		if extra.Suffix != "" {
			s := extra.Suffix
			j.UserProvidedSfx = &s
		}
		if extra.FineTunedModel != "" {
			m := extra.FineTunedModel
			j.FineTunedModel = &m
		}
	}
	return j
}

func openaiJobNotFound(w http.ResponseWriter, id string) {
	openaiError(w, http.StatusNotFound, "invalid_request_error", "id", "", "No such fine-tuning job: "+id)
}

// openaiJobByPath loads the key owner's run named by {job_id}: 404 for anyone else's.
func (a *app) openaiJobByPath(w http.ResponseWriter, r *http.Request) (store.Run, bool) {
	raw := r.PathValue("job_id")
	id, ok := parseJobID(raw)
	if !ok {
		openaiJobNotFound(w, raw)
		return store.Run{}, false
	}
	run, err := a.store.Run(r.Context(), apiUser(r), id)
	if errors.Is(err, store.ErrNotFound) {
		if other, err := a.store.RunByID(r.Context(), id); err == nil && other.UserID != apiUser(r) {
			a.recordEvent(r, store.EventAuthzDenied, apiUser(r), fmt.Sprintf("run %d (API)", id))
		}
		openaiJobNotFound(w, raw)
		return store.Run{}, false
	}
	if err != nil {
		a.openaiServerError(w, r, err)
		return store.Run{}, false
	}
	return run, true
}

// jobsJSON renders runs as jobs, with the extras of those made through the API; a
// succeeded one whose deploy on success is pending is deployed first, so the job a client
// sees succeeded already names its model.
func (a *app) jobsJSON(r *http.Request, runs []store.Run) ([]openaiJob, error) {
	ids := make([]int64, len(runs))
	for i, run := range runs {
		ids[i] = run.ID
	}
	extras, err := a.store.FineTuneJobs(r.Context(), apiUser(r), ids)
	if err != nil {
		return nil, err
	}
	out := make([]openaiJob, 0, len(runs))
	for _, run := range runs {
		x, has := extras[run.ID]
		if has && !x.Checked && run.Status == store.RunSucceeded {
			if x, err = a.deployJob(r.Context(), store.PendingDeploy{RunID: run.ID, UserID: run.UserID, Suffix: x.Suffix,
				BaseModel: run.Config.BaseModel}); err != nil {
				return nil, err
			}
		}
		out = append(out, a.openaiJobJSON(run, x, has))
	}
	return out, nil
}

func (a *app) openaiShowJob(w http.ResponseWriter, r *http.Request) {
	run, ok := a.openaiJobByPath(w, r)
	if !ok {
		return
	}
	jobs, err := a.jobsJSON(r, []store.Run{run})
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, jobs[0])
}

// openaiListJobs answers GET /v1/fine_tuning/jobs: newest first, after (a job id) and
// limit (1 to 100, default 20).
func (a *app) openaiListJobs(w http.ResponseWriter, r *http.Request) {
	limit, ok := openaiLimit(w, r, 20, 100)
	if !ok {
		return
	}
	q := r.URL.Query()
	for k := range q {
		if strings.HasPrefix(k, "metadata") {
			openaiBadParam(w, "metadata", "Filtering jobs by metadata is not supported here; list them all and filter on the metadata each job carries.")
			return
		}
	}
	var after int64
	if v := q.Get("after"); v != "" {
		if after, ok = parseJobID(v); !ok {
			openaiBadParam(w, "after", "after must be the id of a job from a previous page.")
			return
		}
	}
	runs, more, err := a.store.RunsAfter(r.Context(), apiUser(r), after, limit)
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	jobs, err := a.jobsJSON(r, runs)
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	writeList(w, jobs, more)
}

// openaiCancelJob answers POST /v1/fine_tuning/jobs/{id}/cancel like the run page's
// Cancel: a queued run ends at once, a running one stops at its next heartbeat.
func (a *app) openaiCancelJob(w http.ResponseWriter, r *http.Request) {
	run, ok := a.openaiJobByPath(w, r)
	if !ok {
		return
	}
	_, err := a.store.CancelRun(r.Context(), run.UserID, run.ID)
	if errors.Is(err, store.ErrRunFinished) {
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "job_finished",
			fmt.Sprintf("The job %s has already ended (%s); there is nothing to cancel.", jobID(run.ID), run.Status))
		return
	}
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	a.publish(statusEvent(run.ID))
	a.wake()
	if run, err = a.store.Run(r.Context(), run.UserID, run.ID); err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	jobs, err := a.jobsJSON(r, []store.Run{run})
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, jobs[0])
}

// jobRequest is the body of POST /v1/fine_tuning/jobs as the SDKs send it. Hyperparameter
// values are "auto" or a number, so they are read raw.
type jobRequest struct {
	Model           string            `json:"model"`
	TrainingFile    string            `json:"training_file"`
	ValidationFile  *string           `json:"validation_file"`
	Hyperparameters *rawHyperparams   `json:"hyperparameters"`
	Method          *jobMethodRequest `json:"method"`
	Suffix          *string           `json:"suffix"`
	Seed            *int64            `json:"seed"`
	Metadata        map[string]string `json:"metadata"`
	Integrations    []json.RawMessage `json:"integrations"`
}

type rawHyperparams struct {
	BatchSize              json.RawMessage `json:"batch_size"`
	LearningRateMultiplier json.RawMessage `json:"learning_rate_multiplier"`
	NEpochs                json.RawMessage `json:"n_epochs"`
	Beta                   json.RawMessage `json:"beta"`
}

type jobMethodRequest struct {
	Type       string `json:"type"`
	Supervised *struct {
		Hyperparameters *rawHyperparams `json:"hyperparameters"`
	} `json:"supervised"`
	DPO *struct {
		Hyperparameters *rawHyperparams `json:"hyperparameters"`
	} `json:"dpo"`
	Reinforcement json.RawMessage `json:"reinforcement"`
}

// suffixPattern keeps a suffix fit for a model id.
var suffixPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// jobParamError is a refused job: the parameter to fix and what to do.
type jobParamError struct{ param, msg string }

// isAuto says whether a raw hyperparameter is absent, null or "auto".
func isAuto(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null" || s == `"auto"`
}

// applyHyperparams writes the set hyperparameters into the run form's values; prefix is
// where they were sent ("hyperparameters." or "method.supervised.hyperparameters."), so a
// refusal names the parameter as the client wrote it.
func (a *app) applyHyperparams(h *rawHyperparams, prefix string, v *views.RunFormValues, params map[string]string) *jobParamError {
	if h == nil {
		return nil
	}
	if !isAuto(h.NEpochs) {
		var n int
		if json.Unmarshal(h.NEpochs, &n) != nil {
			return &jobParamError{prefix + "n_epochs", "n_epochs must be \"auto\" or a whole number from 1 to 1000."}
		}
		v.Epochs, params["epochs"] = strconv.Itoa(n), prefix+"n_epochs"
	}
	if !isAuto(h.BatchSize) {
		var n int
		if json.Unmarshal(h.BatchSize, &n) != nil {
			return &jobParamError{prefix + "batch_size", "batch_size must be \"auto\" or a whole number from 1 to 512."}
		}
		v.BatchSize, params["batch_size"] = strconv.Itoa(n), prefix+"batch_size"
	}
	if !isAuto(h.LearningRateMultiplier) {
		var m float64
		def := a.runs.Backend.Offer().Defaults.LearningRate
		if json.Unmarshal(h.LearningRateMultiplier, &m) != nil || !(m > 0) || !(m*def <= 1) {
			return &jobParamError{prefix + "learning_rate_multiplier", fmt.Sprintf(
				"learning_rate_multiplier must be \"auto\" or a number above 0 and at most %s: it multiplies this backend's default learning rate, %s, and the rate may be at most 1.",
				formatFloat(1/def), formatFloat(def))}
		}
		v.LearningRate, params["learning_rate"] = formatFloat(m*def), prefix+"learning_rate_multiplier"
	}
	if !isAuto(h.Beta) {
		return &jobParamError{prefix + "beta", "beta is not adjustable on this server: leave it out or send \"auto\"."}
	}
	return nil
}

// jobRunValues turns the request into the run form's values, or the parameter to fix.
// params maps run form fields to the request's parameter names for parseRun's messages.
func (a *app) jobRunValues(r *http.Request, req jobRequest, params map[string]string) (views.RunFormValues, *jobParamError) {
	v := a.defaultRunValues(r)
	v.DatasetID, v.EvalDatasetID = "", ""
	if req.Model == "" {
		return v, &jobParamError{"model", "You must provide a model: one of the base models GET /v1/models lists with owned_by tunelab."}
	}
	v.BaseModel = req.Model
	continued, perr := a.continueFromModel(r, req.Model, &v)
	if perr != nil {
		return v, perr
	}
	if req.TrainingFile == "" {
		return v, &jobParamError{"training_file", "You must provide a training_file: the id of a file uploaded with POST /v1/files."}
	}
	id, ok := parseFileID(req.TrainingFile)
	if !ok {
		return v, &jobParamError{"training_file", fmt.Sprintf("Invalid file id %q: use the id of a file uploaded with POST /v1/files.", req.TrainingFile)}
	}
	v.DatasetID = strconv.FormatInt(id, 10)
	if req.ValidationFile != nil && *req.ValidationFile != "" {
		id, ok := parseFileID(*req.ValidationFile)
		if !ok {
			return v, &jobParamError{"validation_file", fmt.Sprintf("Invalid file id %q: use the id of a file uploaded with POST /v1/files.", *req.ValidationFile)}
		}
		v.EvalDatasetID = strconv.FormatInt(id, 10)
	}
	if req.Seed != nil {
		v.Seed = strconv.FormatInt(*req.Seed, 10)
	}
	if len(req.Integrations) > 0 {
		return v, &jobParamError{"integrations", "Integrations (such as Weights & Biases) are not supported here; the run page charts every metric. Leave integrations out."}
	}
	if req.Suffix != nil && *req.Suffix != "" && !suffixPattern.MatchString(*req.Suffix) {
		return v, &jobParamError{"suffix", "suffix must be 1 to 64 letters, digits, '.', '_' or '-'."}
	}
	if len(req.Metadata) > 16 {
		return v, &jobParamError{"metadata", "metadata may hold at most 16 keys."}
	}
	for k, val := range req.Metadata {
		if len(k) > 64 || len(val) > 512 {
			return v, &jobParamError{"metadata", "metadata keys may be at most 64 characters and values at most 512."}
		}
	}
	if perr := a.applyHyperparams(req.Hyperparameters, "hyperparameters.", &v, params); perr != nil {
		return v, perr
	}
	dpo := false
	if m := req.Method; m != nil {
		switch m.Type {
		case "supervised":
			if m.Supervised != nil {
				if perr := a.applyHyperparams(m.Supervised.Hyperparameters, "method.supervised.hyperparameters.", &v, params); perr != nil {
					return v, perr
				}
			}
		case "dpo":
			dpo = true
			if m.DPO != nil {
				if perr := a.applyHyperparams(m.DPO.Hyperparameters, "method.dpo.hyperparameters.", &v, params); perr != nil {
					return v, perr
				}
			}
		case "reinforcement":
			return v, &jobParamError{"method.type", "Reinforcement fine-tuning is not offered here; use supervised or dpo."}
		default:
			return v, &jobParamError{"method.type", fmt.Sprintf("%q is not a method; use supervised or dpo.", m.Type)}
		}
	}
	switch {
	case dpo:
		v.Method, params["method"] = string(store.MethodDPO), "method.type"
	case continued.RunID != 0 && continued.Config.Method != store.MethodDPO:
		// Supervised on a fine-tuned model: its own method (LoRA stays LoRA, full stays full).
		v.Method, params["method"] = string(continued.Config.Method), "method.type"
	default:
		// Supervised: the backend's first method for chat or completion data (LoRA where offered).
		v.Method, params["method"] = string(a.methodFor(store.FormatChat)), "method.type"
	}
	return v, nil
}

// runFieldParams orders the run form's fields as a refusal names them first, with the
// request's parameter each stands for by default.
var runFieldParams = []struct{ field, param string }{
	{"dataset_id", "training_file"}, {"eval_dataset_id", "validation_file"}, {"base_model", "model"},
	{"method", "method.type"}, {"epochs", "hyperparameters.n_epochs"}, {"batch_size", "hyperparameters.batch_size"},
	{"learning_rate", "hyperparameters.learning_rate_multiplier"}, {"seed", "seed"}, {"gpu_type", "model"},
	{"init_snapshot_id", "model"}, {"lora_rank", "model"},
}

// firstRunError picks the refusal to report: by runFieldParams's order, else any.
func firstRunError(errs map[string]string, params map[string]string) jobParamError {
	for _, f := range runFieldParams {
		if msg, ok := errs[f.field]; ok {
			p := f.param
			if named, ok := params[f.field]; ok {
				p = named
			}
			return jobParamError{p, msg}
		}
	}
	for field, msg := range errs {
		return jobParamError{"", field + ": " + msg}
	}
	return jobParamError{}
}

// openaiCreateJob answers POST /v1/fine_tuning/jobs.
func (a *app) openaiCreateJob(w http.ResponseWriter, r *http.Request) {
	var req jobRequest
	if !decodeOpenAI(w, r, &req) {
		return
	}
	userID := apiUser(r)
	params := map[string]string{}
	values, perr := a.jobRunValues(r, req, params)
	if perr != nil {
		openaiBadParam(w, perr.param, perr.msg)
		return
	}
	nr, errs := a.parseRun(userID, values)
	if len(errs) == 0 {
		if errs = a.jobFileErrors(r, nr, req); len(errs) > 0 {
			params["dataset_id"], params["eval_dataset_id"] = "training_file", "validation_file"
		}
	}
	if len(errs) > 0 {
		e := firstRunError(errs, params)
		openaiBadParam(w, e.param, e.msg)
		return
	}
	block, err := a.billing.RunBlock(r.Context(), userID)
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	if block.Blocked() {
		openaiError(w, http.StatusTooManyRequests, "insufficient_quota", "", "insufficient_quota", block.Reason)
		return
	}
	if req.Suffix != nil && *req.Suffix != "" {
		nr.Name = store.DefaultRunName(nr.Config) + " · " + *req.Suffix
	}
	nr.MaxQueued = a.cfg.QueuedRunsQuota
	run, err := a.store.CreateRun(r.Context(), nr)
	var quota *store.QuotaError
	switch {
	case errors.As(err, &quota):
		openaiError(w, http.StatusTooManyRequests, "requests", "", "rate_limit_exceeded", queuedRunsMessage(quota))
		return
	case errors.As(err, new(*store.InitSnapshotError)):
		// The fine-tuned model continued from: deleted meanwhile, or the method differs.
		errs, _ := a.initSnapshotErrors(err)
		if ie := new(store.InitSnapshotError); errors.As(err, &ie) && ie.Field == "method" {
			errs["method"] = fmt.Sprintf("A job on a fine-tuned model keeps its snapshot's method: send method.type %s, or leave method out.",
				jobMethodName(store.Method(ie.Want)))
		}
		e := firstRunError(errs, params)
		openaiBadParam(w, e.param, e.msg)
		return
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDatasetFormat):
		// A file deleted meanwhile, or the format check CreateRun repeats.
		e := firstRunError(a.jobFileErrors(r, nr, req), map[string]string{"dataset_id": "training_file", "eval_dataset_id": "validation_file"})
		if e.msg == "" {
			e = jobParamError{"training_file", "No such file: " + req.TrainingFile}
		}
		openaiBadParam(w, e.param, e.msg)
		return
	case err != nil:
		a.openaiServerError(w, r, err)
		return
	}
	suffix := ""
	if req.Suffix != nil {
		suffix = *req.Suffix
	}
	extra := store.FineTuneJob{RunID: run.ID, UserID: userID, Model: req.Model, Suffix: suffix, Metadata: req.Metadata}
	if err := a.store.CreateFineTuneJob(r.Context(), extra); err != nil {
		// Nothing half-saved: the run goes too (queued, so it is cancelled at once).
		if derr := a.store.DeleteRun(r.Context(), userID, run.ID); derr != nil {
			a.log.ErrorContext(r.Context(), "openai job: undo run", "run", run.ID, "err", derr)
		}
		a.openaiServerError(w, r, err)
		return
	}
	a.wake()
	writeJSON(w, http.StatusOK, a.openaiJobJSON(run, extra, true))
}

// jobFileErrors checks the files exist (another person's is the same as none) and suit
// the method, by run form field.
func (a *app) jobFileErrors(r *http.Request, nr store.NewRun, req jobRequest) map[string]string {
	errs := map[string]string{}
	check := func(field, raw string, id int64) {
		if id == 0 {
			return
		}
		_, err := a.store.Dataset(r.Context(), nr.UserID, id)
		if err != nil {
			errs[field] = "No such file: " + raw + ". Use the id of a file uploaded with POST /v1/files."
		}
	}
	check("dataset_id", req.TrainingFile, nr.DatasetID)
	if req.ValidationFile != nil {
		check("eval_dataset_id", *req.ValidationFile, nr.EvalDatasetID)
	}
	if len(errs) > 0 {
		return errs
	}
	for field, msg := range a.formatErrors(r, nr) {
		if field != "method" {
			errs[field] = strings.Replace(msg, fmt.Sprintf("; %s needs", nr.Config.Method), fmt.Sprintf("; this job's method (%s) needs", jobMethodName(nr.Config.Method)), 1)
		}
	}
	return errs
}

// jobMethodName is the run method as the API names it.
func jobMethodName(m store.Method) string {
	if m == store.MethodDPO {
		return "dpo"
	}
	return "supervised"
}

// builtInModel says whether a base model is one of the built-in ones (served in-process).
func builtInModel(id string) bool {
	_, ok := trainer.BaseModelByID(id)
	return ok
}

// continueFromModel makes a job whose model is one of the person's live deployments (a
// job's fine_tuned_model, or a snapshot deployed from its run page) continue from that
// snapshot, as Continue on the run page does: the snapshot's base model, its LoRA rank and
// alpha. A base model, or a name that is no deployment of theirs, is left to parseRun.
func (a *app) continueFromModel(r *http.Request, model string, v *views.RunFormValues) (store.InitSource, *jobParamError) {
	for _, m := range a.runs.Backend.Offer().Models {
		if m.ID == model {
			return store.InitSource{}, nil
		}
	}
	d, err := a.store.LiveDeploymentByName(r.Context(), apiUser(r), model)
	if err != nil {
		return store.InitSource{}, nil // not found: parseRun says the backend does not offer it
	}
	src, err := a.store.InitSnapshotSource(r.Context(), apiUser(r), d.SnapshotID)
	if err != nil {
		return store.InitSource{}, &jobParamError{"model", fmt.Sprintf("The snapshot behind %q is no longer available to continue from.", model)}
	}
	c := src.Config
	v.BaseModel, v.InitSnapshotID = c.BaseModel, strconv.FormatInt(src.SnapshotID, 10)
	if c.UsesLoRA() {
		v.LoRARank, v.LoRAAlpha = strconv.Itoa(c.LoRARank), formatFloat(c.LoRAAlpha)
	}
	return src, nil
}
