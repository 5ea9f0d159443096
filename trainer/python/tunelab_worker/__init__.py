"""tunelab's Python GPU worker: trains one run with transformers + peft, speaking the
worker API of docs/worker-api.md (the same protocol as the built-in `tunelab worker`)."""

__version__ = "0.1.0"
