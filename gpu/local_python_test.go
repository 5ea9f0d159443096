package gpu

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tunelab/store"
)

// fakePython writes a stand-in interpreter that prints offer for `-m tunelab_worker
// --offer` and records its environment, beside a trainer/python-like package folder.
func fakePython(t *testing.T, offer string) (python, dir string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "trainer-python")
	if err := os.MkdirAll(filepath.Join(dir, "tunelab_worker"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tunelab_worker", "__main__.py"), []byte("# stand-in\n"), 0o644)
	python = filepath.Join(root, "python")
	script := "#!/bin/sh\nenv > \"$0.env\"\n[ \"$*\" = \"-m tunelab_worker --offer\" ] || exit 3\ncat <<'JSON'\n" + offer + "\nJSON\n"
	if err := os.WriteFile(python, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return python, dir
}

func TestPythonWorkerOffersWhatTheWorkerFinds(t *testing.T) {
	python, dir := fakePython(t, `{"models":[{"id":"acme/tiny","parameters":1500000}],"skipped":[],"methods":["lora","qlora","dpo","full"],
		"gpus":[{"name":"NVIDIA H200","memory_bytes":150000000000},{"name":"NVIDIA H200","memory_bytes":150000000000}]}`)
	p := PythonWorker{Python: python, Dir: dir, ModelsDir: "/srv/models"}
	cfg, err := p.WithPython(context.Background(), LocalConfig{Slots: 2, Models: []Model{{ID: "tunelab/byte-mlp-base"}}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := l.Offer()
	if len(o.Models) != 1 || o.Models[0].ID != "acme/tiny" || !strings.Contains(o.Models[0].About, "1.5M parameters") {
		t.Fatalf("models %+v", o.Models)
	}
	if !slices.Equal(o.Methods, []store.Method{store.MethodLoRA, store.MethodQLoRA, store.MethodDPO, store.MethodFull}) {
		t.Fatalf("methods %v", o.Methods)
	}
	if len(o.GPUTypes) != 1 || o.GPUTypes[0].ID != "cuda-nvidia-h200" || !strings.Contains(o.GPUTypes[0].About, "2 on this server") {
		t.Fatalf("GPU types %+v", o.GPUTypes)
	}
	if o.Slots != 2 || o.Defaults != PythonDefaults {
		t.Fatalf("slots %d defaults %+v", o.Slots, o.Defaults)
	}
	if !slices.Equal(cfg.Command, []string{python, "-m", "tunelab_worker"}) {
		t.Fatalf("command %q", cfg.Command)
	}
	for _, want := range []string{"PYTHONPATH=" + dir, "TUNELAB_MODELS_DIR=/srv/models", "HF_HUB_OFFLINE=1"} {
		if !slices.Contains(cfg.Env, want) {
			t.Errorf("worker env %q lacks %s", cfg.Env, want)
		}
	}
	probeEnv, _ := os.ReadFile(python + ".env")
	if !strings.Contains(string(probeEnv), "TUNELAB_MODELS_DIR=/srv/models\n") {
		t.Errorf("the probe did not get TUNELAB_MODELS_DIR:\n%s", probeEnv)
	}
}

func TestPythonWorkerWithoutCUDAOffersTheCPU(t *testing.T) {
	python, dir := fakePython(t, `{"models":[{"id":"tiny","parameters":0}],"skipped":[],"methods":["lora","dpo","full"],"gpus":[]}`)
	cfg, err := PythonWorker{Python: python, Dir: dir}.WithPython(context.Background(), LocalConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.GPUTypes) != 1 || cfg.GPUTypes[0].ID != "cpu" || slices.Contains(cfg.Methods, store.MethodQLoRA) {
		t.Fatalf("GPU types %+v, methods %v", cfg.GPUTypes, cfg.Methods)
	}
}

func TestPythonWorkerRefusesToStartWithoutModelsOrPackage(t *testing.T) {
	python, dir := fakePython(t, `{"models":[],"skipped":["the base model x has pickled weights (a.bin)"],"methods":["lora"],"gpus":[]}`)
	_, err := PythonWorker{Python: python, Dir: dir}.WithPython(context.Background(), LocalConfig{})
	if err == nil || !strings.Contains(err.Error(), "found no base model") || !strings.Contains(err.Error(), "pickled weights (a.bin)") {
		t.Fatalf("err = %v", err)
	}
	_, err = PythonWorker{Python: python, Dir: t.TempDir()}.WithPython(context.Background(), LocalConfig{})
	if err == nil || !strings.Contains(err.Error(), "no tunelab_worker package") {
		t.Fatalf("err = %v", err)
	}
	_, err = PythonWorker{Python: filepath.Join(t.TempDir(), "missing-python"), Dir: dir}.WithPython(context.Background(), LocalConfig{})
	if err == nil || !strings.Contains(err.Error(), "TUNELAB_PYTHON") {
		t.Fatalf("err = %v", err)
	}
}
