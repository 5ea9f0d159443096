package handlers

import (
	"context"
	"time"

	"tunelab/store"
)

// Deploy on success: when a job made through /v1/fine_tuning/jobs succeeds on the built-in
// model, its final snapshot is deployed under the model id the job reports as
// fine_tuned_model ("ft:<base model>:<suffix>:ftjob-<id>"), so a client can pass it to
// /v1/chat/completions at once; the deployment is listed on the Deployments page and
// stopped there like any other. A GPU run's snapshot cannot be served yet, so its job
// succeeds with fine_tuned_model null. A sweep does this soon after the run ends; reading
// the job does it at once, so a client never sees succeeded without the model.

// FineTuneDeployEvery is how often the sweep looks for succeeded jobs to deploy.
const FineTuneDeployEvery = 10 * time.Second

// fineTunedModelName is the model id of a job's deployment, in OpenAI's ft: form.
func fineTunedModelName(p store.PendingDeploy) string {
	return "ft:" + p.BaseModel + ":" + p.Suffix + ":" + jobID(p.RunID)
}

// deployJob deploys a succeeded job's final snapshot once and returns the job's extras as
// they now are.
func (a *app) deployJob(ctx context.Context, p store.PendingDeploy) (store.FineTuneJob, error) {
	var snapID int64
	if builtInModel(p.BaseModel) {
		snaps, err := a.store.Snapshots(ctx, p.UserID, p.RunID)
		if err != nil {
			return store.FineTuneJob{}, err
		}
		for _, s := range snaps {
			if s.Final {
				snapID = s.ID
			}
		}
	}
	if err := a.store.DeployFineTuneJob(ctx, p.RunID, snapID, fineTunedModelName(p), a.now()); err != nil {
		return store.FineTuneJob{}, err
	}
	jobs, err := a.store.FineTuneJobs(ctx, p.UserID, []int64{p.RunID})
	return jobs[p.RunID], err
}

// deployFineTunedJobs deploys every succeeded job still pending.
func (a *app) deployFineTunedJobs(ctx context.Context) {
	pending, err := a.store.SucceededUndeployedJobs(ctx)
	if err != nil {
		a.log.ErrorContext(ctx, "fine-tune deploys", "err", err)
		return
	}
	for _, p := range pending {
		if _, err := a.deployJob(ctx, p); err != nil {
			a.log.ErrorContext(ctx, "fine-tune deploy", "run", p.RunID, "err", err)
		}
	}
}

func (a *app) watchFineTuneDeploys(stop <-chan struct{}) {
	t := time.NewTicker(FineTuneDeployEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			a.deployFineTunedJobs(context.Background())
		}
	}
}
