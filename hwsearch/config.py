"""The resolved configuration of one run: plain values, saved with every result.

Kept free of heavy imports so that the CLI can answer `--help` and reject bad input fast.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


# how a run records a model, data, metric or loss passed to hwsearch.search as an object: "object:pkg.mod.Net"
IN_MEMORY = "object:"
DATA_SETS = ("digits", "fashion-mnist")     # --data by name: the built-in data sets (hwsearch.workloads)
IMAGE_FOLDER = "imagefolder:"               # --data imagefolder:PATH: one sub-folder of images per class


@dataclass(frozen=True)
class RunConfig:
    target: str = "cortex-a76"      # built-in name or path to a target YAML
    budget: str | None = "10MB"     # file-size budget; MB = 10^6 bytes, MiB = 2^20
    latency: str | None = None      # latency budget on the target, e.g. "5ms"
    energy: str | None = None       # energy budget per inference, e.g. "2mJ"
    objectives: str = "proxy"       # "proxy" or e.g. "proxy,latency": a multi-objective front
    sampler: str | None = None      # Optuna sampler; None: tpe, or nsga2 for several objectives
    proxy: str = "weighted"         # per-layer errors weighted by the layers' sensitivities, or "sum" (benchmarks/proxy_fidelity.py)
    max_accuracy_drop: float = 2.0  # points of test accuracy below the baseline that still count as success
    model: str = "resnet18_digits"  # built-in model trained on its data set on first use, or a user's pkg.mod:fn / file.py:fn
    data: str | None = None         # a built-in data set (digits, fashion-mnist), imagefolder:PATH, or a user's
                                    # pkg.mod:load returning (train, val, test); None: the built-in model's own
    input: str | None = None        # shape of one example, e.g. 3x32x32; checked against the data (inferred if None)
    eval: str | None = None         # a user's metric pkg.mod:fn(model, split) -> float; None: top-1 accuracy
    loss: str | None = None         # a user's training loss pkg.mod:fn(outputs, labels); None: cross-entropy
    trials: int = 300               # Optuna trials; each is table look-ups only
    top_k: int = 3                  # best feasible candidates confirmed by retraining
    finetune_epochs: int = 2
    finetune_lr: float = 0.01       # peak learning rate; a tenth of the pre-training peak
    finetune_schedule: str = "one-cycle"   # or "cosine", "constant" (benchmarks/retraining.py)
    finetune_distill: float = 0.0   # weight of the original model's soft targets when fine-tuning (0: labels only)
    calibration_size: int = 256     # training images whose activations feed the proxy
    grid: str = "default"           # per-layer options: classic (version 1), default, or full (slow tables)
    structured: bool = False        # also prune whole channels (channel groups searched as units; see units.py)
    classifier: str | None = None   # "gap": replace the fully connected classifier by GAP + one linear layer first
    classifier_epochs: int = 8      # retraining after the classifier is replaced
    seed: int = 0
    results_dir: str = "results"
    cache_dir: str | None = None    # trained-model cache; None: $HWSEARCH_CACHE or ~/.cache/hwsearch
    run_id: str | None = None       # None: <target>-<budget>-<model>-<UTC time>; also the study's name
    storage: str | None = None      # Optuna storage URL; None: study.journal in the run folder
    heartbeat_s: int = 10           # database storages: a trial silent for 3 beats is failed and retried
    data_dir: str | None = None     # where a built-in data set's files are; None: $HWSEARCH_DATA, Debian's, the cache
    device: str = "auto"            # proxy table, sensitivities, training, evaluation: auto (a GPU if torch sees one),
                                    # cpu, cuda or cuda:N
    finetune_steps: int | None = None   # bound each candidate's fine-tuning to this many steps (None: every epoch)
    workers: int = 0                # proxy-table rows and fine-tuning as tasks on a local Dask cluster of this many
                                    # processes (0: all in this process)
    cluster: str | None = None      # or on the Dask scheduler at this address (tcp://host:8786)


# How each checked field is spelled on the command line; `check` names fields this way, or by
# their YAML key (`nightly.yaml`) with yaml=True.
FLAGS = {"trials": "--trials", "top_k": "--top-k", "finetune_epochs": "--finetune-epochs",
         "calibration_size": "--calibration", "max_accuracy_drop": "--max-accuracy-drop", "model": "--model",
         "data": "--data", "input": "--input", "eval": "--eval", "loss": "--loss", "data_dir": "--data-dir",
         "device": "--device", "finetune_steps": "--finetune-steps", "workers": "--workers", "cluster": "--cluster"}
YAML_KEYS = {"calibration_size": "calibration"}
ARGUMENTS = {"calibration_size": "calibration", "input": "input_shape"}    # hwsearch.search's names


def check(config: RunConfig, *, yaml: bool = False, api: bool = False) -> None:
    """Refuse a config whose values no run can use, with the rule and the fix (HwsearchError).

    The CLI, `nightly.yaml` and `hwsearch.search` share these rules, each naming the values
    as it spells them; budgets are parsed here too. Whether the model, target and data exist
    is checked where they are loaded.
    """
    from hwsearch.budget import Budgets
    from hwsearch.errors import HwsearchError

    def name(field: str) -> str:
        if api:
            return ARGUMENTS.get(field, field)
        return YAML_KEYS.get(field, field) if yaml else FLAGS[field]

    for field, low in (("trials", 1), ("top_k", 1), ("finetune_epochs", 0), ("calibration_size", 1), ("workers", 0)):
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise HwsearchError(f"{name(field)} must be a whole number of at least {low}, got {value!r}"
                                if not isinstance(value, int) or isinstance(value, bool)
                                else f"{name(field)} must be at least {low}, got {value}")
    if config.budget is None and config.latency is None and config.energy is None:
        raise HwsearchError("no budget given: pass --budget (e.g. 10MB), --latency (e.g. 5ms) or --energy "
                            "(e.g. 2mJ), or several" if not (yaml or api) else
                            "no budget given: set budget (e.g. 10MB), latency (e.g. 5ms) or energy (e.g. 2mJ), "
                            "or several")
    if not 0 <= config.max_accuracy_drop <= 100:
        raise HwsearchError(f"{name('max_accuracy_drop')} is in points between 0 and 100, got "
                            f"{config.max_accuracy_drop:g}")
    user_model = ":" in config.model
    kind = data_kind(config.data)
    if user_model and kind is None:
        raise HwsearchError(
            f"{name('model')} package.module:function needs {name('data')} (a function returning train, val and "
            f"test, a built-in data set: {', '.join(DATA_SETS)}, or {IMAGE_FOLDER}PATH) to evaluate and fine-tune it")
    if not user_model and kind not in (None, "builtin"):
        raise HwsearchError(f"{name('data')} {config.data} goes with your own {name('model')} (package.module:function); "
                            f"the built-in {config.model} is trained on a built-in data set ({', '.join(DATA_SETS)})")
    if not user_model and (config.eval or config.loss or config.input):
        raise HwsearchError(f"{name('input')}, {name('eval')} and {name('loss')} go with your own {name('model')} "
                            f"and {name('data')}")
    if kind == "imagefolder" and not config.input:
        raise HwsearchError(f"{name('data')} {config.data} needs {name('input')} (e.g. 3x64x64): the channels and size "
                            "every image is converted and resized to")
    if kind == "imagefolder" and not config.data.removeprefix(IMAGE_FOLDER):
        raise HwsearchError(f"{name('data')} {IMAGE_FOLDER} names no folder: give {IMAGE_FOLDER}PATH")
    if not DEVICE.fullmatch(config.device):
        raise HwsearchError(f"{name('device')} {config.device!r} is not a device: auto, cpu, cuda or cuda:N (e.g. cuda:1)")
    if config.finetune_steps is not None and (isinstance(config.finetune_steps, bool)
                                              or not isinstance(config.finetune_steps, int) or config.finetune_steps < 1):
        raise HwsearchError(f"{name('finetune_steps')} must be a whole number of at least 1, got {config.finetune_steps!r}")
    if config.workers and config.cluster:
        raise HwsearchError(f"{name('workers')} starts a local cluster and {name('cluster')} joins a running one: "
                            "give one of them")
    if config.cluster is not None and not CLUSTER.fullmatch(config.cluster):
        raise HwsearchError(f"{name('cluster')} {config.cluster!r} is not a Dask scheduler address: give "
                            "tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786)")
    Budgets.parse(size=config.budget, latency=config.latency, energy=config.energy)
    if config.input:
        parse_input(config.input)


MAX_ID = 120            # characters: the folder name (plus ".partial" and temporary names) stays far below 255 bytes
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
CLUSTER = re.compile(r"(tcp|tls|ucx)://[^\s/:]+:[0-9]{1,5}")
RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", re.ASCII)


def check_run_id(run_id: str) -> None:
    """A run id names a folder and a study: a plain name of at most MAX_ID characters (RunError if not)."""
    from hwsearch.errors import RunError

    if not RUN_ID.fullmatch(run_id):
        shown = run_id if len(run_id) <= 40 else f"{run_id[:40]}... ({len(run_id)} characters)"
        raise RunError(f"--run-id {shown!r} is not a plain folder name: use letters, digits, '.', '_' and "
                       "'-' only, not starting with '.'")
    if len(run_id) > MAX_ID:
        raise RunError(f"--run-id is {len(run_id)} characters long; give at most {MAX_ID} (a folder name, with room "
                       "for the files hwsearch writes beside it)")


def parse_input(text: str) -> tuple[int, ...]:
    """`3x224x224` -> (3, 224, 224): the shape of one example, without the batch dimension."""
    parts = text.lower().replace("×", "x").split("x")
    if not parts or not all(p.isascii() and p.isdigit() and int(p) > 0 for p in parts) or len(parts) > 4:
        from hwsearch.errors import HwsearchError

        raise HwsearchError(f"--input {text!r} is not a shape: write the sizes of one example joined by 'x', "
                            "e.g. 3x224x224 (channels x height x width) or 512 for a vector")
    return tuple(int(p) for p in parts)


def data_kind(data: str | None) -> str | None:
    """What `--data` names: None, "builtin" (a data set by name), "imagefolder", "object" or "function"."""
    if data is None:
        return None
    if data in DATA_SETS:
        return "builtin"
    if data.startswith(IMAGE_FOLDER):
        return "imagefolder"
    return "object" if data.startswith(IN_MEMORY) else "function"


def resolve_device(spec: str) -> str:
    """The torch device of `--device`: auto is the first GPU torch sees, else the CPU. A GPU asked for where torch
    sees none (or not that many) is one HwsearchError saying so."""
    import torch

    from hwsearch.errors import HwsearchError

    if spec == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        build = "a CPU build of torch" if torch.version.cuda is None else "no CUDA device visible"
        raise HwsearchError(f"--device {spec}: this machine has no GPU torch can use ({build}, torch "
                            f"{torch.__version__}); use --device cpu, or auto to use a GPU where there is one")
    index = int(spec.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise HwsearchError(f"--device {spec}: torch sees {torch.cuda.device_count()} GPU(s), cuda:0 to "
                            f"cuda:{torch.cuda.device_count() - 1}")
    return f"cuda:{index}"
