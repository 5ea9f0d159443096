package trainer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"tunelab/trainer/protocol"
)

func (w *worker) onProgress(step, total int) {
	w.total.Store(int64(total))
	w.step.Store(int64(step))
}

// onMetrics queues the report for the metrics uploader and logs a line; it
// never waits on the network.
func (w *worker) onMetrics(step int, m map[string]float64) error {
	points := make([]protocol.MetricPoint, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		v := m[name]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			if !w.warned[name] {
				w.warned[name] = true
				w.say("step %d: %s is %v, which JSON cannot carry; values of %s that are not finite numbers are not sent", step, name, v, name)
			}
			continue
		}
		points = append(points, protocol.NewMetricPoint(name, step, v))
	}
	w.metrics.add(points...)
	w.say("%s", stepLine(step, int(w.total.Load()), m))
	return nil
}

func (w *worker) postMetrics(ctx context.Context, batch []protocol.MetricPoint) error {
	return w.c.postJSON(ctx, "send metrics", "/metrics", protocol.MetricBatch{Points: batch}, nil)
}

func (w *worker) postLogs(ctx context.Context, batch []string) error {
	return w.c.postJSON(ctx, "send log lines", "/logs", protocol.LogBatch{Lines: batch}, nil)
}

// snapshotHook saves each snapshot to a temporary file while hashing it,
// then streams the file to the server, which keeps it only if the hash
// matches. Training waits for the upload: a snapshot is only saved once
// the server has it.
func (w *worker) snapshotHook(ctx context.Context) func(int, bool, func(io.Writer) error) error {
	return func(step int, final bool, write func(io.Writer) error) error {
		f, err := os.CreateTemp("", "tunelab-snapshot-*.safetensors")
		if err != nil {
			return fmt.Errorf("snapshot at step %d: %w", step, err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		hash := sha256.New()
		buf := bufio.NewWriterSize(io.MultiWriter(f, hash), 256<<10)
		if err := write(buf); err != nil {
			return fmt.Errorf("snapshot at step %d: %w", step, err)
		}
		if err := buf.Flush(); err != nil {
			return fmt.Errorf("snapshot at step %d: %w", step, err)
		}
		size, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return fmt.Errorf("snapshot at step %d: %w", step, err)
		}
		if capBytes := w.spec.MaxSnapshotBytes; capBytes > 0 && size > capBytes {
			return fmt.Errorf("snapshot at step %d is %s, over the server's cap of %s", step, formatSize(size), formatSize(capBytes))
		}
		sum := hex.EncodeToString(hash.Sum(nil))
		header := http.Header{}
		header.Set(protocol.HeaderSnapshotSHA256, sum)
		header.Set(protocol.HeaderSnapshotFinal, strconv.FormatBool(final))
		var reply protocol.Snapshot
		err = w.c.do(ctx, call{
			what:   fmt.Sprintf("upload the snapshot at step %d", step),
			method: http.MethodPut, url: w.c.base + "/snapshots/" + strconv.Itoa(step),
			body: func() io.Reader { return io.NewSectionReader(f, 0, size) }, size: size,
			contentType: "application/octet-stream", header: header,
			read: decodeInto(&reply),
		})
		if err != nil {
			return err
		}
		if reply.SHA256 != "" && !strings.EqualFold(reply.SHA256, sum) {
			return fmt.Errorf("snapshot at step %d: the server stored sha256 %s, not %s", step, reply.SHA256, sum)
		}
		w.say("saved snapshot at step %d (%s)", step, formatSize(size))
		return nil
	}
}

// stepLine is the log line of one metrics report, e.g. "step 10/720 loss
// 2.3125 eval_loss 2.4011 lr 0.003".
func stepLine(step, total int, m map[string]float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "step %d/%d", step, total)
	for _, name := range []string{"loss", "eval_loss", "reward_accuracy", "eval_reward_accuracy"} {
		if v, ok := m[name]; ok {
			fmt.Fprintf(&b, " %s %.4f", name, v)
		}
	}
	if v, ok := m["learning_rate"]; ok {
		fmt.Fprintf(&b, " lr %.3g", v)
	}
	return b.String()
}

// finishedLine sums a run up, e.g. "finished: eval loss 5.55 → 0.63 in 22 s".
func finishedLine(res Result) string {
	if !math.IsNaN(res.FirstEvalLoss) && !math.IsNaN(res.FinalEvalLoss) {
		return fmt.Sprintf("finished: eval loss %.2f → %.2f in %s", res.FirstEvalLoss, res.FinalEvalLoss, formatDuration(res.Duration.Seconds()))
	}
	return fmt.Sprintf("finished: train loss %.2f after %d steps in %s", res.FinalLoss, res.Steps, formatDuration(res.Duration.Seconds()))
}

// formatDuration writes seconds as the server's pages do: "45 s", "3 min 05 s",
// "2 h 04 min".
func formatDuration(sec float64) string {
	s := int64(math.Round(sec))
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d min %02d s", s/60, s%60)
	}
	return fmt.Sprintf("%d h %02d min", s/3600, (s%3600)/60)
}

// formatSize writes bytes as the server's pages do: SI units with at most one decimal,
// e.g. "226.4 kB", "87 kB", "1.2 MB".
func formatSize(n int64) string {
	unit := func(v float64, name string) string {
		return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + " " + name
	}
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 999_950:
		return unit(float64(n)/1e3, "kB")
	case n < 999_950_000:
		return unit(float64(n)/1e6, "MB")
	}
	return unit(float64(n)/1e9, "GB")
}
