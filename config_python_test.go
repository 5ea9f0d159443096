package main

import "testing"

func TestConfigPythonWorker(t *testing.T) {
	cfg, err := loadConfig("serve", nil, envMap(map[string]string{"TUNELAB_LOCAL_WORKER": "python",
		"TUNELAB_PYTHON": "/opt/venv/bin/python", "TUNELAB_MODELS_DIR": "/srv/models"}))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.PythonWorker
	if !cfg.usesPythonWorker() || p.Python != "/opt/venv/bin/python" || p.Dir != "trainer/python" || p.ModelsDir != "/srv/models" {
		t.Fatalf("python worker config %+v (uses: %v)", p, cfg.usesPythonWorker())
	}
	cfg, err = loadConfig("serve", nil, envMap(map[string]string{"TUNELAB_LOCAL_WORKER": "/usr/bin/python3 my_worker.py"}))
	if err != nil || cfg.usesPythonWorker() || cfg.PythonWorker.Python != "python3" {
		t.Fatalf("a custom command is not the Python worker option: %+v %v", cfg.PythonWorker, err)
	}
}
