"""argparse, answered in one line: every command's parser is a `Parser`; the flags of one search
(`run_arguments`, shared by `hwsearch` and `hwsearch codesign`) and the checked run config they give.

argparse prints its usage and an error on two or more lines and exits; a `Parser` raises
`UsageError` with one line instead (the CLI prints it and exits 2), names the option a
mistyped one is closest to (`--budgett` -> `--budget`), never takes an abbreviation for
an option (`--trial 2` is not `--trials 2`), and reads `--budget -5MB` as the value
`-5MB` (which the budget parser then refuses for what it is) rather than as an option.
"""
from __future__ import annotations

import argparse
import difflib
import re
import sys

from hwsearch.config import RunConfig, check, check_run_id
from hwsearch.errors import UsageError


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_args(self._values_that_look_like_options(args), namespace)

    def _values_that_look_like_options(self, argv: list[str]) -> list[str]:
        """`--budget -5MB` as `--budget=-5MB`: a value, since -5MB is no option of this parser."""
        out, i = [], 0
        while i < len(argv):
            token = argv[i]
            action = self._option_string_actions.get(token)
            takes_value = action is not None and action.nargs is None and not isinstance(
                action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction))
            if (takes_value and i + 1 < len(argv) and argv[i + 1].startswith("-")
                    and argv[i + 1].split("=")[0] not in self._option_string_actions):
                out.append(f"{token}={argv[i + 1]}")
                i += 2
                continue
            out.append(token)
            i += 1
        return out

    def error(self, message: str):
        raise UsageError(f"{self._explain(message)} (see {self.prog} --help)")

    def _explain(self, message: str) -> str:
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            words = unknown.group(1).split()
            option = next((w.split("=")[0] for w in words if w.startswith("-")), None)
            if option is None:
                return f"unexpected argument {words[0]!r}"
            known = [o for o in self._option_string_actions if o.startswith("--")]
            close = difflib.get_close_matches(option, known, n=1, cutoff=0.6)
            return f"unknown option {option}" + (f": did you mean {close[0]}?" if close else "")
        invalid = re.match(r"argument (\S+?)(?:/\S+)?: invalid (int|float) value: (.*)", message)
        if invalid:
            kind = "a whole number" if invalid.group(2) == "int" else "a number"
            return f"{invalid.group(1)} {invalid.group(3)} is not {kind}"
        choice = re.match(r"argument (\S+?)(?:/\S+)?: invalid choice: (.*) \(choose from (.*)\)", message)
        if choice:
            return f"{choice.group(1)} {choice.group(2)} is not one of {choice.group(3)}"
        return message


MAX_SEED = 2**32 - 1    # Optuna's samplers take seeds 0 .. 2^32 - 1
SIZES = ("Sizes: B, KB, MB, GB are powers of 10 (10MB = 10,000,000 bytes); KiB, MiB, GiB are powers "
         "of 2 (10MiB = 10,485,760 bytes); a bare number is bytes.")


def run_arguments(p: Parser, **defaults) -> None:
    """The flags of one search, shared by `hwsearch` and `hwsearch codesign` (which sets some `defaults`)."""
    d = RunConfig(**defaults)
    p.add_argument("--target", default=d.target, help=f"built-in target name or path to a target YAML (default {d.target})")
    p.add_argument("--budget", default=None,
                   help="size budget of the exported file, e.g. 10MB, 10MiB, 500KB, 10000000")
    p.add_argument("--latency", default=None, help="latency budget per inference on the target, e.g. 5ms, 250us")
    p.add_argument("--energy", default=None, help="energy budget per inference on the target, e.g. 2mJ, 500uJ")
    p.add_argument("--objectives", default=d.objectives,
                   help="proxy (default: the best plan within the budgets), or proxy with any of size, latency, "
                        "energy, e.g. proxy,latency: a front of plans trading one against the other")
    p.add_argument("--sampler", default=None,
                   help="Optuna sampler: tpe, nsga2, nsga3, random, qmc, gp (default tpe, nsga2 for several objectives)")
    p.add_argument("--proxy", default=d.proxy, choices=("weighted", "sum"),
                   help="how per-layer output errors add up to a plan's score: weighted by each layer's measured "
                        "sensitivity (default; the predicted output divergence) or their plain sum")
    p.add_argument("--max-accuracy-drop", type=float, default=d.max_accuracy_drop,
                   help=f"test accuracy points the exported model may lose against the baseline; below it the run "
                        f"still writes its folder but exits 3 (default {d.max_accuracy_drop:g})")
    p.add_argument("--model", default=d.model,
                   help=f"built-in model, trained on its data set on first use: on digits resnet18_digits, lenet5_digits, "
                        "...; on Fashion-MNIST resnet_fashion, mobilenet_fashion, lenet5_fashion, lenet300_100_fashion "
                        f"(default {d.model}); or your trained model: package.module:function or "
                        "path/to/file.py:function returning an nn.Module")
    p.add_argument("--data", default=None,
                   help="a built-in data set (digits, fashion-mnist); with your model also imagefolder:PATH (one "
                        "sub-folder of images per class; needs --input) or package.module:function / "
                        "file.py:function returning (train, val, test), each an (inputs, labels) pair of tensors or "
                        "a DataLoader")
    p.add_argument("--data-dir", default=None,
                   help="the folder holding a built-in data set's files (default $HWSEARCH_DATA, then where Debian's "
                        "package puts them, then the cache)")
    p.add_argument("--input", default=None, help="shape of one example, e.g. 3x32x32; checked against --data")
    p.add_argument("--eval", default=None,
                   help="your metric, function(model, split) -> float, higher is better (default top-1 accuracy)")
    p.add_argument("--loss", default=None,
                   help="your fine-tuning loss, function(outputs, labels) -> tensor (default cross-entropy)")
    p.add_argument("--trials", type=int, default=d.trials, help=f"Optuna trials (default {d.trials})")
    p.add_argument("--top-k", type=int, default=d.top_k, help=f"candidates confirmed by retraining (default {d.top_k})")
    p.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs, help=f"epochs per retrained candidate (default {d.finetune_epochs})")
    p.add_argument("--calibration", type=int, default=d.calibration_size, help=f"images feeding the proxy (default {d.calibration_size})")
    p.add_argument("--finetune-steps", type=int, default=None,
                   help="bound each candidate's fine-tuning to this many optimizer steps (default: every epoch)")
    p.add_argument("--device", default=d.device,
                   help="where the proxy table, fine-tuning and evaluation run: auto (a GPU where torch sees one, "
                        "else the CPU; default), cpu, cuda or cuda:N; mixed precision on a GPU")
    p.add_argument("--workers", type=int, default=d.workers,
                   help="compute the proxy table's rows and fine-tune the candidates as tasks on a local Dask cluster "
                        "of this many processes (default 0: in this process)")
    p.add_argument("--cluster", default=None, metavar="tcp://HOST:PORT",
                   help="... or on the Dask cluster whose scheduler is at this address (started with `dask scheduler`)")
    p.add_argument("--grid", choices=["classic", "default", "full"], default=d.grid,
                   help="per-layer options searched: classic (rank x sparsity x uniform bits), default (plus codebooks, "
                        "data-aware SVD, Tucker-2, spatial separation), full (plus low rank plus sparse and more; "
                        "slow tables)")
    p.add_argument("--structured", action="store_true",
                   help="also prune whole filters and channels (each channel group searched as one unit); slower "
                        "tables")
    p.add_argument("--classifier", choices=["gap"], default=None,
                   help="first replace the fully connected classifier after the last conv by global average pooling "
                        "and one linear layer, and retrain (Hsiao 2017)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the search and the fine-tuning, 0 to {MAX_SEED} "
                   "(default 0): the same inputs and seed give the same file, byte for byte")
    p.add_argument("--results", default=d.results_dir, help=f"folder for run folders (default {d.results_dir}/)")
    p.add_argument("--cache-dir", default=None, help="trained-model cache (default $HWSEARCH_CACHE or ~/.cache/hwsearch)")
    p.add_argument("--run-id", default=None, help="name of the run folder (default <target>-<budget>-<model>-<UTC time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars; print the summary only")


def run_config(args) -> RunConfig:
    """The run config of parsed `run_arguments`, checked (the rule and the fix, as one line)."""
    if not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed must be between 0 and {MAX_SEED} (the range Optuna's samplers take), got {args.seed}")
    if args.run_id is not None:
        check_run_id(args.run_id)
    config = RunConfig(target=args.target, budget=args.budget, latency=args.latency, energy=args.energy,
                       objectives=args.objectives, sampler=args.sampler, proxy=args.proxy,
                       max_accuracy_drop=args.max_accuracy_drop,
                       model=args.model, data=args.data, input=args.input, eval=args.eval, loss=args.loss,
                       trials=args.trials,
                       top_k=args.top_k, finetune_epochs=args.finetune_epochs, calibration_size=args.calibration,
                       grid=args.grid, structured=args.structured, classifier=args.classifier,
                       seed=args.seed, results_dir=args.results, cache_dir=args.cache_dir, run_id=args.run_id,
                       storage=getattr(args, "storage", None),
                       heartbeat_s=getattr(args, "heartbeat", RunConfig.heartbeat_s), data_dir=args.data_dir,
                       device=args.device, finetune_steps=args.finetune_steps, workers=args.workers,
                       cluster=args.cluster)
    check(config)
    return config
