package main

import "tunelab/gpu"

// pythonWorkerConfig reads the settings of TUNELAB_LOCAL_WORKER=python (README "Local
// backend with the Python worker").
func pythonWorkerConfig(env func(string, string) string) gpu.PythonWorker {
	return gpu.PythonWorker{
		Python:    env("TUNELAB_PYTHON", "python3"),
		Dir:       env("TUNELAB_PYTHON_WORKER_DIR", "trainer/python"),
		ModelsDir: env("TUNELAB_MODELS_DIR", ""),
	}
}

// usesPythonWorker says whether the local backend runs the Python worker.
func (c config) usesPythonWorker() bool {
	return len(c.LocalWorker) == 1 && c.LocalWorker[0] == "python"
}
