package trainer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// trainSnapshot trains cfg on data and returns its final snapshot's bytes and the first
// and final eval losses.
func trainSnapshot(t *testing.T, cfg Config, data TrainingData) (snap []byte, first, final float64) {
	t.Helper()
	var buf bytes.Buffer
	res, err := Train(context.Background(), cfg, data, Hooks{Snapshot: func(step int, final bool, write func(io.Writer) error) error {
		if !final {
			return nil
		}
		buf.Reset()
		return write(&buf)
	}})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), res.FirstEvalLoss, res.FinalEvalLoss
}

func TestContinuedRunStartsFromTheSnapshotsWeights(t *testing.T) {
	for _, method := range []Method{MethodLoRA, MethodFull} {
		t.Run(string(method), func(t *testing.T) {
			cfg := smallConfig(method)
			data := TrainingData{Examples: additionExamples(60, 1)}
			snap, fresh, trained := trainSnapshot(t, cfg, data)

			// The loaded weights are the snapshot's tensors, exactly.
			init, err := LoadInitSnapshot(bytes.NewReader(snap), cfg)
			if err != nil {
				t.Fatal(err)
			}
			want, _, err := ReadSafetensors(bytes.NewReader(snap))
			if err != nil {
				t.Fatal(err)
			}
			got := init.model.snapshotTensors()
			if len(got) != len(want) {
				t.Fatalf("%d tensors loaded, the snapshot has %d", len(got), len(want))
			}
			byName := map[string]Tensor{}
			for _, w := range want {
				byName[w.Name] = w
			}
			for _, g := range got {
				if w := byName[g.Name]; !slices.Equal(g.Shape, w.Shape) || !slices.Equal(g.Data, w.Data) {
					t.Fatalf("tensor %s differs from the snapshot's", g.Name)
				}
			}
			if init.Step == 0 {
				t.Fatal("the snapshot's step was not read")
			}

			// A continued run (other hyperparameters, same data) starts where the first ended:
			// its first loss is the first run's last, well below a fresh run's first.
			next := cfg
			next.Epochs, next.LearningRate = 2, 3e-3
			var snap2 bytes.Buffer
			res, err := Train(context.Background(), next, TrainingData{Examples: data.Examples, Init: init}, Hooks{
				Snapshot: func(step int, final bool, write func(io.Writer) error) error { snap2.Reset(); return write(&snap2) },
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: fresh first eval loss %.3f, trained %.3f, continued first %.3f -> %.3f", method, fresh, trained, res.FirstEvalLoss, res.FinalEvalLoss)
			if math.Abs(res.FirstEvalLoss-trained) > 1e-4*trained {
				t.Errorf("continued run starts at eval loss %.5f, the snapshot's run ended at %.5f", res.FirstEvalLoss, trained)
			}
			if !(res.FirstEvalLoss < 0.8*fresh) {
				t.Errorf("continued first loss %.3f is not clearly below a fresh run's %.3f", res.FirstEvalLoss, fresh)
			}
			// With another seed (so another eval split), its own snapshot still loads on its
			// own: a lora base is rebuilt from the first run's seed, not this run's.
			next.Seed = 12345
			if res, err = Train(context.Background(), next, TrainingData{Examples: data.Examples, Init: init}, Hooks{
				Snapshot: func(step int, final bool, write func(io.Writer) error) error { snap2.Reset(); return write(&snap2) },
			}); err != nil {
				t.Fatal(err)
			}
			m2, err := ReadModel(bytes.NewReader(snap2.Bytes()), nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range res.Model.w.w1 {
				if float32(v) != float32(m2.w.w1[i]) {
					t.Fatal("the continued run's snapshot does not rebuild its base")
				}
			}
		})
	}
}

func TestLoadInitSnapshotRefusesWhatDoesNotFit(t *testing.T) {
	lora := smallConfig(MethodLoRA)
	lora.Epochs = 1
	data := TrainingData{Examples: additionExamples(20, 3)}
	loraSnap, _, _ := trainSnapshot(t, lora, data)
	full := smallConfig(MethodFull)
	full.Epochs = 1
	fullSnap, _, _ := trainSnapshot(t, full, data)

	bigger := lora
	bigger.HiddenDim = 32
	rank := lora
	rank.LoRARank = 2
	var foreign bytes.Buffer
	WriteSafetensors(&foreign, []Tensor{{Name: "x", Shape: []int{1}, Data: []float32{1}}}, map[string]string{"format": "other"})
	var renamed bytes.Buffer
	tensors, meta, _ := ReadSafetensors(bytes.NewReader(fullSnap))
	tensors[0].Name = "something.else"
	WriteSafetensors(&renamed, tensors, meta)

	for _, c := range []struct {
		name string
		snap []byte
		cfg  Config
		want string
	}{
		{"another model size", loraSnap, bigger, "hidden 24; this run's base model has context 6, embedding 6, hidden 32"},
		{"another rank", loraSnap, rank, "rank 4; this run's lora rank is 2"},
		{"adapters into a full run", loraSnap, full, "holds lora adapters"},
		{"a whole model into a lora run", fullSnap, lora, "holds a whole model"},
		{"not ours", foreign.Bytes(), full, "is not tunelab-charlm-v1"},
		{"not safetensors", []byte("hello"), full, "init snapshot"},
		{"a tensor missing", renamed.Bytes(), full, "is missing"},
	} {
		_, err := LoadInitSnapshot(bytes.NewReader(c.snap), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "init snapshot") {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

// initSnapshotFront serves the init snapshot itself and passes everything else to the
// fake worker server.
func initSnapshotFront(t *testing.T, f *fakeWorkerServer, snap []byte) string {
	target, _ := url.Parse(f.srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/worker/runs/{id}/init-snapshot", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			fakeError(w, http.StatusUnauthorized, "unauthorized", "no token")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(snap)
	})
	mux.Handle("/", proxy)
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	return front.URL
}

func TestRunWorkerContinuesFromTheJobsInitSnapshot(t *testing.T) {
	rows := additionChatJSONL(60)
	first := newFakeWorkerServer(t, testJob("chat", 60, nil), rows, "")
	if err := runWorkerFor(t, first, &syncBuffer{}); err != nil {
		t.Fatal(err)
	}
	st := first.state()
	var snap fakeSnapshot
	lastStep := 0
	for step, s := range st.snapshots {
		if s.final {
			snap, lastStep = s, step
		}
	}
	freshFirst := st.points[fakePointKey{"eval_loss", 0}]
	trained := st.points[fakePointKey{"eval_loss", lastStep}]

	sum := sha256.Sum256(snap.data)
	for _, c := range []struct {
		name, sha, want string
	}{
		{"continues", hex.EncodeToString(sum[:]), ""},
		{"a digest that does not match", strings.Repeat("0", 64), "sha256"},
	} {
		t.Run(c.name, func(t *testing.T) {
			job := testJob("chat", 60, func(cfg map[string]any) { cfg["epochs"] = 1; cfg["learning_rate"] = 0.003; cfg["seed"] = 5 })
			job["init_snapshot"] = map[string]any{"url": "/api/v1/worker/runs/12/init-snapshot", "run_id": 11, "step": lastStep,
				"sha256": c.sha, "size_bytes": len(snap.data)}
			next := newFakeWorkerServer(t, job, rows, "")
			log := &syncBuffer{}
			o := next.options(log)
			o.Server = initSnapshotFront(t, next, snap.data)
			err := RunWorker(context.Background(), o)
			ns := next.state()
			if c.want != "" {
				if err == nil || len(ns.finishes) != 1 || ns.finishes[0].status != statusFailed || !strings.Contains(ns.finishes[0].reason, c.want) {
					t.Fatalf("err %v, finishes %+v", err, ns.finishes)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, log.String())
			}
			got := ns.points[fakePointKey{"eval_loss", 0}]
			t.Logf("fresh first eval loss %.3f, trained %.3f, continued first %.3f", freshFirst, trained, got)
			if !(got < 0.8*freshFirst) || math.Abs(got-trained) > 0.05*trained {
				t.Fatalf("continued run's first eval loss %.3f; fresh %.3f, the source ended at %.3f", got, freshFirst, trained)
			}
			if !ns.hasLog("starting from the weights of run 11's snapshot at step") {
				t.Fatalf("no log line names the snapshot: %q", ns.logs)
			}
		})
	}
}
