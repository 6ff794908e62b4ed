"""Console scripts: gflow-train, gflow-eval, gflow-sample, gflow-list."""
