"""Console scripts: gflow-train, gflow-eval, gflow-sample, gflow-list."""

import os

# Before anything imports TensorFlow: keep its C++ info logs off the terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
