package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

// Job bodies below are shaped as the SDKs send them (recorded from openai-python's
// resources/fine_tuning/jobs/jobs.py and openai-node's resources/fine-tuning/jobs/jobs.js):
// a JSON object of the parameters given (model, training_file, validation_file,
// hyperparameters, method {type, supervised|dpo {hyperparameters}}, suffix, seed,
// metadata, integrations), hyperparameter values a number or "auto". Lists send after and
// limit as query parameters.

type jobResponse struct {
	openaiJob
	Error *openaiJobError `json:"error"`
}

func decodeJob(t *testing.T, r response) jobResponse {
	t.Helper()
	var j jobResponse
	if r.status != 200 || json.Unmarshal([]byte(r.body), &j) != nil || j.Object != "fine_tuning.job" {
		t.Fatalf("not a job: %d %s", r.status, r.body)
	}
	return j
}

// finishGreeterJob plays the worker for the queued job: metrics, a log line, the trained
// greeter as the final snapshot at step 40, then success.
func (ts *testServer) finishGreeterJob(t *testing.T, runID int64) {
	t.Helper()
	claimed, tok := ts.claim(t)
	if claimed != runID {
		t.Fatalf("claimed %d, want %d", claimed, runID)
	}
	ts.post(runID, "heartbeat", tok, `{"step":20,"total_steps":40}`)
	ts.post(runID, "metrics", tok, `{"points":[{"name":"loss","step":20,"value":1.5},{"name":"loss","step":40,"value":0.25},{"name":"eval_loss","step":40,"value":0.5}]}`)
	ts.post(runID, "logs", tok, `{"lines":["step 40/40 loss 0.25"]}`)
	body := trainedGreeter(t)
	sum := sha256.Sum256(body)
	r := ts.workerCall("PUT", fmt.Sprintf("/api/v1/worker/runs/%d/snapshots/40", runID), tok, bytes.NewReader(body),
		map[string]string{"X-Snapshot-SHA256": hex.EncodeToString(sum[:]), "X-Snapshot-Final": "true", "Content-Type": "application/octet-stream"})
	if r.status != http.StatusCreated {
		t.Fatalf("snapshot: %d %s", r.status, r.body)
	}
	if r := ts.post(runID, "finish", tok, `{"status":"succeeded"}`); r.status != 200 {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
}

func TestOpenAIFineTuningJobLifecycle(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("jobs@example.com")
	key := ts.makeAPIKey(c, "k", "")
	train := decodeFile(t, ts.openaiUpload(key, "fine-tune", "train.jsonl", completionLines(12), false))
	valid := decodeFile(t, ts.openaiUpload(key, "fine-tune", "valid.jsonl", completionLines(10), false))

	created := decodeJob(t, ts.openaiPost(key, "/v1/fine_tuning/jobs", fmt.Sprintf(`{"model":"tunelab/byte-mlp-small","training_file":%q,
		"validation_file":%q,"method":{"type":"supervised","supervised":{"hyperparameters":{"n_epochs":3,"batch_size":"auto","learning_rate_multiplier":0.5}}},
		"suffix":"greeter","seed":42,"metadata":{"team":"docs"}}`, train.ID, valid.ID)))
	if created.Status != "queued" || created.Model != "tunelab/byte-mlp-small" || created.TrainingFile != train.ID || *created.ValidationFile != valid.ID ||
		created.Hyperparameters.NEpochs != 3 || created.Hyperparameters.LearningRateMultiplier != 0.5 || created.Seed != 42 ||
		created.Metadata["team"] != "docs" || created.FineTunedModel != nil || created.Method.Type != "supervised" || created.Method.Supervised == nil {
		t.Fatalf("created: %+v", created)
	}
	var runID int64
	fmt.Sscanf(created.ID, "ftjob-%d", &runID)
	run, err := ts.store.Run(context.Background(), mustUserID(t, ts, c), runID)
	def := fakeBackend{}.Offer().Defaults
	if err != nil || run.Config.Epochs != 3 || run.Config.LearningRate != def.LearningRate*0.5 || run.Config.BatchSize != def.BatchSize ||
		run.Config.Seed != 42 || run.EvalDatasetID == 0 || !strings.Contains(run.Name, "greeter") {
		t.Fatalf("the run: %+v %v", run, err)
	}
	// The run is on the Runs page like any other.
	if page := ts.do(c, "GET", "/runs", nil, nil); !strings.Contains(page.body, fmt.Sprintf(`href="/runs/%d"`, runID)) {
		t.Fatal("the job's run is not on the Runs page")
	}

	ts.finishGreeterJob(t, runID)
	done := decodeJob(t, ts.apiGet(key, "/v1/fine_tuning/jobs/"+created.ID, nil))
	want := "ft:tunelab/byte-mlp-small:greeter:" + created.ID
	if done.Status != "succeeded" || done.FineTunedModel == nil || *done.FineTunedModel != want || done.FinishedAt == nil {
		t.Fatalf("succeeded job: %+v", done)
	}
	// Deployed on success: the model answers at once and is on the Deployments page.
	answer := decodeAnswer(t, ts.openaiPost(key, "/v1/completions", fmt.Sprintf(`{"model":%q,"prompt":%q,"max_tokens":12,"temperature":0}`, want, greetPrompt)))
	if *answer.Choices[0].Text != greetAnswer {
		t.Fatalf("the fine-tuned model answered %q", *answer.Choices[0].Text)
	}
	if page := ts.do(c, "GET", "/deployments", nil, nil); !strings.Contains(page.body, want) {
		t.Fatal("the job's deployment is not on the Deployments page")
	}
	var models listPage[openaiModel]
	if ts.apiGet(key, "/v1/models", &models); !strings.Contains(fmt.Sprint(models.Data), want) {
		t.Fatalf("models: %+v", models)
	}

	// Events: the timeline and the log, newest first, paged by after.
	var all []openaiJobEvent
	for path := "/v1/fine_tuning/jobs/" + created.ID + "/events?limit=2"; ; {
		var page listPage[openaiJobEvent]
		ts.apiGet(key, path, &page)
		if len(page.Data) == 0 || len(page.Data) > 2 || page.Data[0].Object != "fine_tuning.job.event" {
			t.Fatalf("events page: %+v", page)
		}
		all = append(all, page.Data...)
		if !page.HasMore {
			break
		}
		path = "/v1/fine_tuning/jobs/" + created.ID + "/events?limit=2&after=" + page.Data[len(page.Data)-1].ID
	}
	text := fmt.Sprint(all)
	if all[0].Message != "New fine-tuned model created and deployed: "+want || all[len(all)-1].Message != "Fine-tuning job queued" ||
		!strings.Contains(text, "The job has successfully completed") || !strings.Contains(text, "step 40/40 loss 0.25") || len(all) != 6 {
		t.Fatalf("all events: %+v", all)
	}

	// Checkpoints: the snapshot with the losses at its step.
	var cps listPage[openaiCheckpoint]
	ts.apiGet(key, "/v1/fine_tuning/jobs/"+created.ID+"/checkpoints", &cps)
	if len(cps.Data) != 1 || cps.Data[0].StepNumber != 40 || cps.Data[0].Metrics["train_loss"] != 0.25 || cps.Data[0].Metrics["valid_loss"] != 0.5 ||
		cps.Data[0].FineTuningJobID != created.ID || cps.Data[0].FineTunedModelCheckpoint != fmt.Sprintf("tl-%d-40", runID) {
		t.Fatalf("checkpoints: %+v", cps)
	}

	// A job on the fine-tuned model continues from its snapshot (its method and rank).
	more := decodeJob(t, ts.openaiPost(key, "/v1/fine_tuning/jobs", fmt.Sprintf(`{"model":%q,"training_file":%q}`, want, train.ID)))
	var moreID int64
	fmt.Sscanf(more.ID, "ftjob-%d", &moreID)
	cont, _ := ts.store.Run(context.Background(), mustUserID(t, ts, c), moreID)
	snaps, _ := ts.store.Snapshots(context.Background(), mustUserID(t, ts, c), runID)
	if more.Model != want || cont.Config.InitSnapshotID != snaps[0].ID || cont.Config.Method != run.Config.Method || cont.Config.BaseModel != "tunelab/byte-mlp-small" {
		t.Fatalf("continued job %+v, run config %+v", more, cont.Config)
	}
	pref := decodeFile(t, ts.openaiUpload(key, "fine-tune", "pref.jsonl", preferenceLines(12), false))
	r := ts.openaiPost(key, "/v1/fine_tuning/jobs", fmt.Sprintf(`{"model":%q,"training_file":%q,"method":{"type":"dpo"}}`, want, pref.ID))
	if e := openaiErrorOf(t, r); r.status != 400 || *e.Param != "method.type" || !strings.Contains(e.Message, "send method.type supervised") {
		t.Fatalf("dpo on a LoRA fine-tuned model: %d %s", r.status, r.body)
	}
	if cancelled := decodeJob(t, ts.openaiPost(key, "/v1/fine_tuning/jobs/"+more.ID+"/cancel", "")); cancelled.Status != "cancelled" {
		t.Fatalf("cancel: %+v", cancelled)
	}

	// A second job, cancelled while queued; a second cancel says it has ended.
	second := decodeJob(t, ts.openaiPost(key, "/v1/fine_tuning/jobs", fmt.Sprintf(`{"model":"tunelab/byte-mlp-small","training_file":%q}`, train.ID)))
	if cancelled := decodeJob(t, ts.openaiPost(key, "/v1/fine_tuning/jobs/"+second.ID+"/cancel", "")); cancelled.Status != "cancelled" {
		t.Fatalf("cancel: %+v", cancelled)
	}
	if r := ts.openaiPost(key, "/v1/fine_tuning/jobs/"+second.ID+"/cancel", ""); r.status != 400 {
		t.Fatalf("cancel again: %d %s", r.status, r.body)
	}
	var p1, p2 listPage[openaiJob]
	ts.apiGet(key, "/v1/fine_tuning/jobs?limit=1", &p1)
	ts.apiGet(key, "/v1/fine_tuning/jobs?limit=1&after="+p1.Data[0].ID, &p2)
	if len(p1.Data) != 1 || p1.Data[0].ID != second.ID || !p1.HasMore || len(p2.Data) != 1 || p2.Data[0].ID != more.ID || !p2.HasMore {
		t.Fatalf("job pages: %+v then %+v", p1, p2)
	}

	// Another person: 404 for the job and everything under it, none listed, and their
	// own job cannot train on this person's file.
	other := ts.makeAPIKey(ts.signUp("other-jobs@example.com"), "k", "")
	for _, r := range []response{ts.apiGet(other, "/v1/fine_tuning/jobs/"+created.ID, nil), ts.openaiPost(other, "/v1/fine_tuning/jobs/"+created.ID+"/cancel", ""),
		ts.apiGet(other, "/v1/fine_tuning/jobs/"+created.ID+"/events", nil), ts.apiGet(other, "/v1/fine_tuning/jobs/"+created.ID+"/checkpoints", nil)} {
		if e := openaiErrorOf(t, r); r.status != 404 || e.Type != "invalid_request_error" {
			t.Fatalf("another person's job: %d %s", r.status, r.body)
		}
	}
	var theirs listPage[openaiJob]
	if ts.apiGet(other, "/v1/fine_tuning/jobs", &theirs); len(theirs.Data) != 0 {
		t.Fatalf("another person's jobs listed: %+v", theirs)
	}
	r = ts.openaiPost(other, "/v1/fine_tuning/jobs", fmt.Sprintf(`{"model":"tunelab/byte-mlp-small","training_file":%q}`, train.ID))
	if e := openaiErrorOf(t, r); r.status != 400 || *e.Param != "training_file" {
		t.Fatalf("another person's file: %d %s", r.status, r.body)
	}
	if r := ts.openaiPost(other, "/v1/completions", fmt.Sprintf(`{"model":%q,"prompt":"x"}`, want)); r.status != 404 {
		t.Fatalf("another person's fine-tuned model: %d %s", r.status, r.body)
	}
	// Nor can they continue from it.
	otherFile := decodeFile(t, ts.openaiUpload(other, "fine-tune", "t.jsonl", completionLines(12), false))
	r = ts.openaiPost(other, "/v1/fine_tuning/jobs", fmt.Sprintf(`{"model":%q,"training_file":%q}`, want, otherFile.ID))
	if e := openaiErrorOf(t, r); r.status != 400 || *e.Param != "model" {
		t.Fatalf("continuing from another person's model: %d %s", r.status, r.body)
	}
}

func TestOpenAIFineTuningJobRefusesBadValuesNamingTheParam(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("bad-jobs@example.com")
	key := ts.makeAPIKey(c, "k", "")
	file := decodeFile(t, ts.openaiUpload(key, "fine-tune", "train.jsonl", completionLines(12), false)).ID
	pref := decodeFile(t, ts.openaiUpload(key, "fine-tune", "pref.jsonl", preferenceLines(12), false)).ID
	job := func(extra string) string {
		return fmt.Sprintf(`{"model":"tunelab/byte-mlp-small","training_file":%q%s}`, file, extra)
	}
	for param, body := range map[string]string{
		"model":                      `{"training_file":"` + file + `"}`,
		"training_file":              `{"model":"tunelab/byte-mlp-small","training_file":"file-999"}`,
		"validation_file":            job(`,"validation_file":"nonsense"`),
		"hyperparameters.n_epochs":   job(`,"hyperparameters":{"n_epochs":0}`),
		"hyperparameters.batch_size": job(`,"hyperparameters":{"batch_size":"big"}`),
		"hyperparameters.learning_rate_multiplier":                   job(`,"hyperparameters":{"learning_rate_multiplier":1e9}`),
		"method.supervised.hyperparameters.learning_rate_multiplier": job(`,"method":{"type":"supervised","supervised":{"hyperparameters":{"learning_rate_multiplier":-1}}}`),
		"method.dpo.hyperparameters.beta":                            fmt.Sprintf(`{"model":"tunelab/byte-mlp-small","training_file":%q,"method":{"type":"dpo","dpo":{"hyperparameters":{"beta":0.2}}}}`, pref),
		"method.type":                                                job(`,"method":{"type":"reinforcement","reinforcement":{}}`),
		"suffix":                                                     job(`,"suffix":"has spaces"`),
		"seed":                                                       job(`,"seed":-1`),
		"metadata":                                                   job(`,"metadata":{"k":"` + strings.Repeat("v", 513) + `"}`),
		"integrations":                                               job(`,"integrations":[{"type":"wandb","wandb":{"project":"p"}}]`),
	} {
		r := ts.openaiPost(key, "/v1/fine_tuning/jobs", body)
		if e := openaiErrorOf(t, r); r.status != 400 || e.Param == nil || *e.Param != param || e.Type != "invalid_request_error" {
			t.Fatalf("%s: %d %s", param, r.status, r.body)
		}
	}
	// A model the backend does not offer names model; the method must fit the file.
	r := ts.openaiPost(key, "/v1/fine_tuning/jobs", fmt.Sprintf(`{"model":"gpt-4o-mini","training_file":%q}`, file))
	if e := openaiErrorOf(t, r); r.status != 400 || *e.Param != "model" || !strings.Contains(e.Message, "gpt-4o-mini") {
		t.Fatalf("unknown model: %d %s", r.status, r.body)
	}
	r = ts.openaiPost(key, "/v1/fine_tuning/jobs", fmt.Sprintf(`{"model":"tunelab/byte-mlp-small","training_file":%q,"method":{"type":"dpo"}}`, file))
	if e := openaiErrorOf(t, r); r.status != 400 || *e.Param != "training_file" || !strings.Contains(e.Message, "preference") {
		t.Fatalf("dpo on completion data: %d %s", r.status, r.body)
	}
	// DPO on preference data is made as a dpo job.
	if j := decodeJob(t, ts.openaiPost(key, "/v1/fine_tuning/jobs", fmt.Sprintf(`{"model":"tunelab/byte-mlp-small","training_file":%q,"method":{"type":"dpo","dpo":{"hyperparameters":{"n_epochs":"auto"}}}}`, pref))); j.Method.Type != "dpo" || j.Method.DPO == nil {
		t.Fatalf("dpo job: %+v", j)
	}
	runs, _ := ts.store.Runs(context.Background(), mustUserID(t, ts, c))
	if len(runs) != 1 || runs[0].Config.Method != store.MethodDPO {
		t.Fatalf("refused jobs left runs: %d", len(runs))
	}
}

func TestOpenAIFineTuningJobQuotaAndBilling(t *testing.T) {
	ts := newTestServer(t, Config{QueuedRunsQuota: 1})
	c := ts.signUp("quota-jobs@example.com")
	key := ts.makeAPIKey(c, "k", "")
	file := decodeFile(t, ts.openaiUpload(key, "fine-tune", "train.jsonl", completionLines(12), false)).ID
	body := fmt.Sprintf(`{"model":"tunelab/byte-mlp-small","training_file":%q}`, file)
	decodeJob(t, ts.openaiPost(key, "/v1/fine_tuning/jobs", body))
	r := ts.openaiPost(key, "/v1/fine_tuning/jobs", body)
	if e := openaiErrorOf(t, r); r.status != 429 || *e.Code != "rate_limit_exceeded" || !strings.Contains(e.Message, "queued") {
		t.Fatalf("over the queued-runs quota: %d %s", r.status, r.body)
	}
}

func TestOpenAIFineTuningJobOnAGPUModelSucceedsWithoutAModel(t *testing.T) {
	ts := newTestServerRuns(t, Config{}, nil, func(r *Runs, _ *store.Store, _ func() time.Time) { r.Backend = gpuOfferBackend{} })
	c := ts.signUp("gpu-jobs@example.com")
	key := ts.makeAPIKey(c, "k", "")
	file := decodeFile(t, ts.openaiUpload(key, "fine-tune", "train.jsonl", completionLines(12), false)).ID
	job := decodeJob(t, ts.openaiPost(key, "/v1/fine_tuning/jobs", fmt.Sprintf(`{"model":"Qwen/Qwen2.5-0.5B","training_file":%q,"suffix":"q"}`, file)))
	var runID int64
	fmt.Sscanf(job.ID, "ftjob-%d", &runID)
	claimed, tok := ts.claim(t)
	if claimed != runID {
		t.Fatalf("claimed %d, want %d", claimed, runID)
	}
	ts.post(runID, "finish", tok, `{"status":"succeeded"}`)
	for range 2 { // the second read finds it already looked at
		if done := decodeJob(t, ts.apiGet(key, "/v1/fine_tuning/jobs/"+job.ID, nil)); done.Status != "succeeded" || done.FineTunedModel != nil {
			t.Fatalf("GPU job: %+v", done)
		}
	}
	if deps, _ := ts.store.Deployments(context.Background(), mustUserID(t, ts, c)); len(deps) != 0 {
		t.Fatalf("a GPU job was deployed: %+v", deps)
	}
}

func TestOpenAIFineTuningFailedJobCarriesTheReason(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("failed-jobs@example.com")
	key := ts.makeAPIKey(c, "k", "")
	file := decodeFile(t, ts.openaiUpload(key, "fine-tune", "train.jsonl", completionLines(12), false)).ID
	job := decodeJob(t, ts.openaiPost(key, "/v1/fine_tuning/jobs", fmt.Sprintf(`{"model":"tunelab/byte-mlp-small","training_file":%q}`, file)))
	runID, tok := ts.claim(t)
	ts.post(runID, "finish", tok, `{"status":"failed","reason":"loss became NaN"}`)
	failed := decodeJob(t, ts.apiGet(key, "/v1/fine_tuning/jobs/"+job.ID, nil))
	if failed.Status != "failed" || failed.Error == nil || failed.Error.Message != "loss became NaN" || failed.FineTunedModel != nil {
		t.Fatalf("failed job: %+v", failed)
	}
	var events listPage[openaiJobEvent]
	ts.apiGet(key, "/v1/fine_tuning/jobs/"+job.ID+"/events?limit=1", &events)
	if len(events.Data) != 1 || events.Data[0].Level != "error" || events.Data[0].Message != "The job failed: loss became NaN" {
		t.Fatalf("failure event: %+v", events)
	}
}
