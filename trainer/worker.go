package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"tunelab/trainer/protocol"
)

// WorkerOptions configure RunWorker.
type WorkerOptions struct {
	Server     string       // the tunelab server's base URL, e.g. https://tunelab.example.com
	RunID      int64        // the run to train
	Token      string       // the run's bearer token; never printed or logged
	HTTPClient *http.Client // nil: a default client
	Log        io.Writer    // progress lines for the operator; nil discards them
	// Patience is how long to keep retrying a server that does not answer
	// (it may be restarting); default 5 minutes.
	Patience time.Duration
}

// ErrRunCancelled is what RunWorker returns after the server asked for the
// run to stop and the worker reported it cancelled: a clean end, not a fault.
var ErrRunCancelled = errors.New("the run was cancelled from the server")

// Statuses a worker finishes a run with.
const (
	statusSucceeded = protocol.StatusSucceeded
	statusFailed    = protocol.StatusFailed
	statusCancelled = protocol.StatusCancelled
)

// Protocol limits (docs/worker-api.md).
const (
	maxMetricBatch = 1000
	maxLogBatch    = 200
	maxLogLine     = 2000
	maxStep        = 1_000_000_000
)

// worker is one RunWorker call's state.
type worker struct {
	o     WorkerOptions
	c     *client
	out   *lineWriter
	spec  jobSpec
	cfg   Config
	model BaseModel

	step, total atomic.Int64 // progress, for heartbeats
	// stopAsked is the reason of a clean stop the server asked for (nil: none): training
	// ends at the current step with a final snapshot, and the run finishes as cancelled.
	stopAsked atomic.Pointer[string]

	metrics *uploader[protocol.MetricPoint]
	logs    *uploader[string]
	warned  map[string]bool // metrics already reported as non-finite; training goroutine only

	cancelTrain, cancelNet context.CancelFunc
	mu                     sync.Mutex
	stopErr                error // why training was stopped early; the first reason wins
	deadErr                error // why the server will accept nothing more for this run
}

// RunWorker trains one run as docs/worker-api.md describes: it fetches the
// job and its data, trains with the CPU trainer while sending heartbeats,
// metrics, logs and snapshots, and finishes the run on the server. It
// returns nil when the run succeeded, ErrRunCancelled when the server
// cancelled it, and otherwise an error saying why the run did not succeed.
func RunWorker(ctx context.Context, o WorkerOptions) error {
	w := &worker{o: o, out: &lineWriter{w: o.Log}, warned: map[string]bool{}}
	c, err := newClient(o, w.note)
	if err != nil {
		return err
	}
	w.c = c
	if err := c.getJSON(ctx, "get the job", "/job", &w.spec); err != nil {
		return fmt.Errorf("run %d: %w", o.RunID, err)
	}
	cfg, model, err := w.spec.trainerConfig()
	if err != nil {
		reason := plainReason(err)
		w.note("cannot run this job: %s", reason)
		if ferr := w.finish(ctx, statusFailed, reason); ferr != nil {
			return fmt.Errorf("run %d: %w; and reporting that failed: %w", o.RunID, err, ferr)
		}
		return fmt.Errorf("run %d failed: %w", o.RunID, err)
	}
	w.cfg, w.model = cfg, model
	return w.run(ctx)
}

// run trains with heartbeats and uploads going on beside it, then concludes.
func (w *worker) run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait() // no goroutine outlives RunWorker
	netCtx, cancelNet := context.WithCancel(ctx)
	defer cancelNet()
	// Training stops on its own context, so a cancel still lets the last
	// metrics and logs go out before finishing.
	trainCtx, cancelTrain := context.WithCancel(netCtx)
	defer cancelTrain()
	w.cancelTrain, w.cancelNet = cancelTrain, cancelNet

	w.metrics = newUploader(maxMetricBatch, w.postMetrics, w.stop)
	w.logs = newUploader(maxLogBatch, w.postLogs, w.stop)
	heartbeatCtx, stopHeartbeats := context.WithCancel(netCtx)
	defer stopHeartbeats()
	wg.Go(func() { w.metrics.run(netCtx) })
	wg.Go(func() { w.logs.run(netCtx) })
	wg.Go(func() { w.heartbeats(heartbeatCtx) })

	res, err := w.train(trainCtx)
	return w.conclude(ctx, res, err, stopHeartbeats)
}

func (w *worker) train(ctx context.Context) (Result, error) {
	data, train, eval, err := w.loadData(ctx)
	if err != nil {
		return Result{}, err
	}
	if err := w.loadInit(ctx, &data); err != nil {
		return Result{}, err
	}
	p := planRun(w.cfg, data)
	w.total.Store(int64(p.totalSteps))
	w.say("%s", loadedLine(train, eval, p))
	w.say("training: %s on %s (%s parameters), %d epochs, %d steps", w.cfg.Method, w.model.ID,
		groupedCount(w.model.Size.Parameters()), w.cfg.Epochs, p.totalSteps)
	return Train(ctx, w.cfg, data, Hooks{
		Metrics:  w.onMetrics,
		Progress: w.onProgress,
		Snapshot: w.snapshotHook(ctx),
		Stop:     func() bool { return w.stopAsked.Load() != nil },
	})
}

// conclude reports how the run ended: it flushes metrics and logs, which
// must be acknowledged before the run may finish, and then finishes it.
func (w *worker) conclude(ctx context.Context, res Result, trainErr error, stopHeartbeats func()) error {
	id := w.o.RunID
	if ctx.Err() != nil {
		// A signal stopped the worker. Either the server asked for that (and
		// ends the run itself) or it fails the run when heartbeats stop; a
		// finish sent from here could contradict it.
		w.note("stopped before the run ended; the server decides how the run ends")
		return fmt.Errorf("run %d: stopped: %w", id, ctx.Err())
	}
	stopped, dead := w.stopReasons()
	if dead == nil && endsRun(trainErr) {
		dead = trainErr // a snapshot upload met a dead token
	}
	if dead != nil {
		return w.abandon(dead)
	}
	status, reason, result := statusSucceeded, "", error(nil)
	switch {
	case trainErr == nil && res.Stopped:
		status, result = statusCancelled, ErrRunCancelled
		reason = *w.stopAsked.Load()
		w.say("stopped at step %d of %d with a final snapshot, as the server asked: %s", res.Steps, w.total.Load(), reason)
	case trainErr == nil:
		w.say("%s", finishedLine(res))
	case errors.Is(stopped, ErrRunCancelled):
		status, result = statusCancelled, ErrRunCancelled
		w.say("cancelled at step %d of %d, as asked", w.step.Load(), w.total.Load())
	default:
		cause := trainErr
		if stopped != nil {
			cause = stopped // trainErr is only the context's "canceled"
		}
		status, reason = statusFailed, plainReason(cause)
		result = fmt.Errorf("run %d failed: %w", id, cause)
		w.say("failed: %s", reason)
	}
	if err := w.flush(); err != nil {
		if _, dead := w.stopReasons(); dead != nil {
			return w.abandon(dead)
		}
		if endsRun(err) {
			return w.abandon(err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("run %d: stopped: %w", id, ctx.Err())
		}
		w.note("could not deliver every metric and log line: %v", err)
		if status == statusSucceeded {
			status, reason = statusFailed, plainReason(err)
			result = fmt.Errorf("run %d failed: %w", id, err)
		}
	}
	stopHeartbeats()
	if err := w.finish(ctx, status, reason); err != nil {
		if endsRun(err) {
			return w.abandon(err)
		}
		return fmt.Errorf("run %d: %w", id, err)
	}
	w.note("reported the run as %s", status)
	return result
}

// abandon ends without finishing: the server accepts nothing more.
func (w *worker) abandon(err error) error {
	w.note("the server no longer accepts this run (%v); stopping without finishing it", err)
	return fmt.Errorf("run %d: the run's token is no longer valid or the run has ended on the server; stopped without finishing: %w", w.o.RunID, err)
}

// stop ends training early for err. An error that means the server accepts
// nothing more for this run also stops every request.
func (w *worker) stop(err error) {
	w.mu.Lock()
	if w.stopErr == nil {
		w.stopErr = err
	}
	dead := endsRun(err)
	if dead && w.deadErr == nil {
		w.deadErr = err
	}
	w.mu.Unlock()
	w.cancelTrain()
	if dead {
		w.cancelNet()
	}
}

func (w *worker) stopReasons() (stopped, dead error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopErr, w.deadErr
}

// flush waits until every queued metric point and log line was
// acknowledged.
func (w *worker) flush() error {
	metricsErr := make(chan error, 1)
	go func() { metricsErr <- w.metrics.flush() }()
	logsErr := w.logs.flush()
	return errors.Join(<-metricsErr, logsErr)
}

func (w *worker) finish(ctx context.Context, status, reason string) error {
	return w.c.postJSON(ctx, "finish the run", "/finish", protocol.Finish{Status: status, Reason: reason}, nil)
}

// clipReason keeps a stop reason within what POST /finish accepts.
func clipReason(s string) string {
	const most = 500
	if len(s) <= most {
		return s
	}
	s = s[:most]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// heartbeats tells the server the worker is alive, at once and then every
// interval, and hears cancel and stop requests. Each heartbeat asks the server
// to hold its answer until one is asked or the interval has passed ("wait"), so
// it reaches training within a second; an answer that comes early without
// one waits out the rest of the interval. A heartbeat that cannot be delivered
// within the patience stops training: the server will have failed the run.
func (w *worker) heartbeats(ctx context.Context) {
	every := w.spec.heartbeatEvery()
	cancelled := false
	for {
		sent := time.Now()
		total := min(w.total.Load(), maxStep)
		body := protocol.NewHeartbeat(int(min(w.step.Load(), total)), int(total), true)
		var reply protocol.HeartbeatReply
		err := w.c.postJSON(ctx, "send a heartbeat", "/heartbeat", body, &reply)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			w.stop(err)
			return
		case reply.Cancel && !cancelled:
			cancelled = true
			w.say("cancel asked at step %d; stopping", w.step.Load())
			w.stop(ErrRunCancelled)
		case reply.Stop != nil && w.stopAsked.Load() == nil:
			reason := clipReason(reply.Stop.Reason)
			w.stopAsked.Store(&reason)
			w.say("stop asked at step %d (%s); saving a final snapshot", w.step.Load(), reason)
		}
		t := time.NewTimer(max(0, every-time.Since(sent)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
