"""hwsearch: per-layer compression (rank, sparsity, bits) that keeps the most accuracy within a
file-size, latency or energy budget on a hardware target.

    import hwsearch
    result = hwsearch.search(model, (train, val, test), target="cortex-a76", budget="1MB")
    result.model, result.plan, result.summary, result.front, result.save("results/mine")
    model, meta = hwsearch.load("results/mine/model.hws", model=Net())
    hwsearch.cost(Net(), (3, 32, 32), "cortex-a76")          # per layer and in total
    hwsearch.targets()

The package reads as the pipeline, each stage a subpackage whose `__init__` is its face:

    workloads/     the model and its data (built-in data sets, the user's own), training
    graph/         the layer graph traced from the model (torch.fx -> networkx)
    compression/   per-layer options, the option grid, the operators that apply them
    export/        the compressed file (.hws) and its ONNX form
    proxy/         the accuracy proxy table (feature-map reconstruction, layer sensitivities)
    (cost_models/, beside this package: targets, cost models, simulators, the cost table)
    storage/       where studies live: journal files, databases, the trial queue
    study/         the search: the exact optimum, the Optuna study, baselines, search units
    runs/          one run stage by stage in its folder: tables, search, retraining, export, results
    codesign/      the search across a grid of hardware variants
    nightly/       matrices of runs from a file, and comparisons between runs
    api.py         the Python API above; commands/ the command line, a shell over it

Imports point down this list only. `config.py` (a run's settings), `budget.py` (budgets
parsed), `errors.py` and `atomic_write.py` lie under every stage. The API is imported on
first use, so that `hwsearch --help` and bad input answer before torch is imported.
"""
__version__ = "0.1.0"

__all__ = ["SearchResult", "cost", "load", "resume", "search", "targets"]


def __getattr__(name: str):
    if name in __all__:
        from hwsearch import api
        return getattr(api, name)
    raise AttributeError(f"module 'hwsearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
