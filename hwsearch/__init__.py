"""hwsearch: per-layer compression search under a hardware budget.

The modules read as the pipeline: workload (models, data, training) -> layer_graph ->
options -> proxy and cost_table (with cost_models/) -> study -> retrain -> artifact
and results; pipeline runs them in order and cli is its shell.
"""
__version__ = "0.1.0"
