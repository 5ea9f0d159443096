package trainer

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"tunelab/trainer/protocol"
)

// jobSpec is the answer to GET /job (docs/worker-api.md). The worker decodes
// it leniently: unknown fields are ignored so an older worker still runs jobs
// from a newer server.
type jobSpec struct{ protocol.Job }

// trainerConfig maps the spec onto DefaultConfig. A spec the CPU trainer
// cannot run is refused here, before anything is downloaded.
func (s jobSpec) trainerConfig() (Config, BaseModel, error) {
	sc := s.Config
	model, ok := BaseModelByID(sc.BaseModel)
	if !ok {
		ids := make([]string, len(BaseModels))
		for i, m := range BaseModels {
			ids[i] = m.ID
		}
		return Config{}, BaseModel{}, fmt.Errorf("base model: %q is not one the built-in CPU trainer offers; it offers %s",
			sc.BaseModel, strings.Join(ids, " and "))
	}
	c := DefaultConfig()
	c.Method = Method(sc.Method)
	c.Epochs = sc.Epochs
	c.LearningRate = sc.LearningRate
	c.BatchSize = sc.BatchSize
	c.LoRARank = sc.LoRARank
	c.LoRAAlpha = sc.LoRAAlpha
	c.MaxSeqLen = sc.MaxSeqLen
	c.Seed = sc.Seed
	c.EvalFraction = sc.ValidationSplit / 100
	c.SnapshotEvery = sc.SnapshotEvery
	c.ContextChars, c.EmbedDim, c.HiddenDim = model.Size.Context, model.Size.Embed, model.Size.Hidden
	if err := c.Validate(); err != nil {
		return Config{}, BaseModel{}, err
	}
	return c, model, nil
}

// heartbeatEvery is the spec's interval, 5 s when it names none.
func (s jobSpec) heartbeatEvery() time.Duration {
	if !(s.HeartbeatIntervalSeconds > 0) {
		return 5 * time.Second
	}
	return max(time.Duration(s.HeartbeatIntervalSeconds*float64(time.Second)), 10*time.Millisecond)
}

// loadData downloads and parses the dataset and, when the spec has one, the
// eval dataset.
func (w *worker) loadData(ctx context.Context) (TrainingData, Rows, Rows, error) {
	train, err := w.download(ctx, "download the dataset", w.spec.Dataset, "/dataset")
	if err != nil {
		return TrainingData{}, Rows{}, Rows{}, err
	}
	data := TrainingData{Examples: train.Examples, Pairs: train.Pairs}
	var eval Rows
	if w.spec.EvalDataset != nil {
		if eval, err = w.download(ctx, "download the eval dataset", *w.spec.EvalDataset, "/dataset?which=eval"); err != nil {
			return TrainingData{}, Rows{}, Rows{}, err
		}
		data.EvalExamples, data.EvalPairs = eval.Examples, eval.Pairs
	}
	return data, train, eval, nil
}

func (w *worker) download(ctx context.Context, what string, ref protocol.Dataset, fallback string) (Rows, error) {
	u := w.c.base + fallback
	if ref.URL != "" {
		var err error
		if u, err = w.c.resolve(ref.URL); err != nil {
			return Rows{}, fmt.Errorf("%s: %w", what, err)
		}
	}
	var rows Rows
	err := w.c.do(ctx, call{what: what, method: http.MethodGet, url: u, read: func(body io.Reader) error {
		var err error
		rows, err = ParseRows(body, ref.Format)
		return err
	}})
	if err != nil {
		return Rows{}, err
	}
	if ref.Rows > 0 && rows.Len() != ref.Rows {
		w.note("%s: the job lists %d rows but %d arrived", what, ref.Rows, rows.Len())
	}
	return rows, nil
}

// heldOutRows is how many of n rows Train holds out for eval (see split).
func heldOutRows(n int, fraction float64) int {
	h := int(math.Round(fraction * float64(n)))
	if fraction > 0 && h == 0 {
		h = 1
	}
	return max(min(h, n-1), 0)
}

// plan is how the rows divide and how many steps Train will take, known
// before it starts so the first heartbeat can say so.
type plan struct {
	trainRows, evalRows, totalSteps int
}

func planRun(cfg Config, data TrainingData) plan {
	n, evalGiven := len(data.Examples), len(data.EvalExamples)
	if cfg.Method == MethodDPO {
		n, evalGiven = len(data.Pairs), len(data.EvalPairs)
	}
	p := plan{trainRows: n, evalRows: evalGiven}
	if evalGiven == 0 {
		p.evalRows = heldOutRows(n, cfg.EvalFraction)
		p.trainRows = n - p.evalRows
	}
	p.totalSteps = cfg.Epochs * ((p.trainRows + cfg.BatchSize - 1) / cfg.BatchSize)
	return p
}

// loadedLine says what arrived and how it divides, e.g. "loaded 160 rows
// (chat): 144 for training, 16 for eval".
func loadedLine(train, eval Rows, p plan) string {
	if eval.Len() > 0 {
		return fmt.Sprintf("loaded %d rows (%s) for training and %d rows (%s) for eval",
			train.Len(), train.Format, eval.Len(), eval.Format)
	}
	if p.evalRows == 0 {
		return fmt.Sprintf("loaded %d rows (%s): all for training, none held out for eval", train.Len(), train.Format)
	}
	return fmt.Sprintf("loaded %d rows (%s): %d for training, %d for eval", train.Len(), train.Format, p.trainRows, p.evalRows)
}

// plainReason turns an error into a finish reason: one line, at most 500
// bytes, cut on a character boundary.
func plainReason(err error) string {
	s := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	return cutUTF8(s, 500)
}

// cutUTF8 shortens s to at most n bytes without splitting a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}
