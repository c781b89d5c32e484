"""The papers' compression tables at small scale: LeNet-300-100, LeNet-5 and a small VGG.

    python benchmarks/paper_tables.py [--models lenet300_100_digits,...] [--epochs 10] [--out results]
    python benchmarks/paper_tables.py --models lenet300_100_fashion,lenet5_fashion --epochs 2 \
        --name paper_tables_fashion          # the LeNets on Fashion-MNIST (55,000 images an epoch)

Each network is trained on scikit-learn's digits, resized to the input it was built for
(28x28 for the LeNets, 16x16 for the VGG), or on Fashion-MNIST (the `*_fashion` models), and
compressed four ways, each with its retraining, every size the bytes of a real `model.hws`
written to disk:

- Deep Compression (Han et al. 2016): magnitude pruning in three rounds to the paper's
  per-layer densities, retraining after each; k-means weight sharing (the paper's bits,
  linear initialisation, 32-bit codebook), retraining the centroids; Huffman coding
  (the file codes indices and sparse positions so wherever it saves bytes).
- Low rank plus sparse after Yu et al. (2017): W = L + S fitted to each layer's feature
  maps, retrained.
- Hsiao's four steps (2017): the classifier replaced by global average pooling (conv nets),
  filters pruned in rounds in the order that evens out compute, truncated SVD of the fully
  connected layers, k-means with a 16-bit codebook; retraining after each.
- hwsearch's own search over every operator (`--grid full --structured`) at the size the
  Deep Compression pipeline reached and at half of it (conv nets also with the classifier
  replaced first, `--classifier gap`), with its retraining.

Writes results/<name>.md and results/<name>.json (name: paper_tables). Wall times are for this
machine (2 shared cores): provisional.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwsearch.export import artifact, plain_  # noqa: E402
from hwsearch.compression import CompressedLayer, Option, apply_, replace_classifier, with_transform  # noqa: E402
from hwsearch.compression.channels import UnitOption, prune_evenly_  # noqa: E402
from hwsearch.compression.transforms import pruning_arguments, record, split_low_rank_  # noqa: E402
from hwsearch.config import RunConfig  # noqa: E402
from hwsearch.graph import LayerGraph  # noqa: E402
from hwsearch.runs import run  # noqa: E402
from hwsearch.workloads import TrainConfig, load_workload, train  # noqa: E402

MODELS = ("lenet300_100_digits", "lenet5_caffe_digits", "vgg_small_digits")
# Deep Compression's kept share per layer (Han et al. 2015, tables 2 and 3; for the VGG, their VGG-16
# conv and fc figures), and its index bits (Han et al. 2016: LeNet-300-100 6 bits; LeNet-5 8 conv, 5 fc)
DENSITY = {
    "lenet300_100_digits": {"fc1": 0.08, "fc2": 0.09, "fc3": 0.26},
    "lenet5_caffe_digits": {"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19},
}
PAPERS = {
    "lenet300_100_digits": [("Deep Compression (MNIST)", "1070 KB -> 27 KB, 40x; error 1.64% -> 1.58%"),
                            ("Ullrich et al. 2017, soft weight-sharing (MNIST)", "64x; error 1.89% -> 1.94%")],
    "lenet5_caffe_digits": [("Deep Compression (MNIST)", "1720 KB -> 44 KB, 39x; error 0.80% -> 0.74%"),
                            ("Ullrich et al. 2017, soft weight-sharing (MNIST)", "162x; error 0.88% -> 0.97%")],
    "vgg_small_digits": [("Deep Compression, VGG-16 (ImageNet)", "552 MB -> 11.3 MB, 49x; top-1 error 31.50% -> "
                          "31.17%"),
                         ("Yu et al. 2017, VGG-16 (ImageNet)", "15x fewer parameters; top-5 89.1%"),
                         ("Hsiao 2017, VGG-16 (ILSVRC2012)", "60.9x; top-1 -0.85 points, top-5 -0.14 points")],
}


# the Fashion-MNIST models are the same networks: the papers' figures are theirs
PAPER_NAME = {"lenet300_100_fashion": "lenet300_100_digits", "lenet5_fashion": "lenet5_caffe_digits"}


def densities(name: str, model: nn.Module, layers) -> dict[str, float]:
    name = PAPER_NAME.get(name, name)
    if name in DENSITY:
        return DENSITY[name]
    # the VGG: the first conv keeps most, the other convs a third, the first fc 5%, the last 20%
    convs = [l.name for l in layers if l.kind == "conv"]
    fcs = [l.name for l in layers if l.kind == "linear"]
    out = {n: 0.3 for n in convs}
    out[convs[0]] = 0.7
    out[fcs[0]], out[fcs[-1]] = 0.05, 0.2
    return out


def index_bits(name: str, layer) -> int:
    if PAPER_NAME.get(name, name) == "lenet300_100_digits":
        return 6
    return 8 if layer.kind == "conv" else 5


class Bench:
    """One network: its data, the file of a model, fine-tuning, and the rows of the table."""

    def __init__(self, name: str, epochs: int, folder: Path):
        self.name, self.epochs, self.folder = name, epochs, folder
        work = load_workload(name)
        self.model, self.data, self.spec, self.example = work.model.eval(), work.data, work.model_spec, work.example
        self.accuracy = work.test_accuracy
        self.layers = LayerGraph.trace(self.model, self.example).compressible()
        self.names = [l.name for l in self.layers]
        self.calibration = self.data.train.take(256)
        self.baseline_bytes = self.size(apply_(copy.deepcopy(self.model), {n: Option() for n in self.names}),
                                        self.spec, self.names)
        self.rows = []

    def size(self, compressed: nn.Module, spec: dict, names: list[str]) -> int:
        path = self.folder / f"{self.name}.hws"
        written = artifact.save(compressed, path, model_spec=spec, layer_names=names)
        loaded, _ = artifact.load(path)                      # every size is a file that loads and runs
        with torch.no_grad():
            probe = self.data.test.take(64)
            if not torch.isfinite(compressed.eval()(probe)).all():
                raise RuntimeError(f"{self.name}: retraining diverged (non-finite outputs); lower its learning rate")
            if not torch.equal(loaded(probe), compressed.eval()(probe)):
                raise RuntimeError(f"{self.name}: the reloaded file computes something else")
        return written

    def tune(self, model: nn.Module, epochs: int | None = None, lr: float = 0.01) -> float:
        train(model, self.data, TrainConfig(epochs=epochs or self.epochs, max_lr=lr, weight_decay=1e-5,
                                            max_shift=self.data.max_shift))
        return self.data.evaluate(model, self.data.test)

    def add(self, method: str, compressed: nn.Module, spec: dict, names: list[str], before: float, seconds: float,
            note: str = "") -> None:
        size = self.size(compressed, spec, names)
        self.rows.append({"model": self.name, "method": method, "stored_weights": stored_weights(compressed),
                          "params": sum(p.numel() for p in self.model.parameters()), "bytes": size,
                          "ratio": self.baseline_bytes / size, "accuracy_baseline": self.accuracy,
                          "accuracy_compressed": before, "accuracy_retrained": self.data.evaluate(
                              compressed, self.data.test), "seconds": round(seconds, 1), "note": note})
        print(f"{self.name:22s} {method:34s} {size:9,d} B {self.baseline_bytes / size:6.1f}x "
              f"acc {self.accuracy:.2%} -> {self.rows[-1]['accuracy_retrained']:.2%}", flush=True)


def stored_weights(model: nn.Module) -> int:
    """Weights a compressed model stores: kept entries of its factors, its biases, and every other parameter."""
    total, inside = 0, []
    for name, module in model.named_modules():
        if any(name.startswith(prefix) for prefix in inside):
            continue
        if isinstance(module, CompressedLayer):
            inside.append(name + ".")
            for factor in module.factors:
                total += int(factor.mask.sum()) if factor.mask is not None else factor.shape[0] * factor.shape[1]
            total += 0 if module.bias is None else module.bias.numel()
        else:
            total += sum(p.numel() for p in module.parameters(recurse=False))
    return total


def deep_compression(b: Bench) -> None:
    start = time.perf_counter()
    kept = densities(b.name, b.model, b.layers)
    model = copy.deepcopy(b.model)
    for round_ in (1, 2, 3):                     # prune a third of the way each round, retrain with masks fixed
        plan = {n: Option(sparsity=(1 - kept[n]) * round_ / 3) for n in b.names}
        model = apply_(plain_(model), plan)
        b.tune(model)
    pruned = b.data.evaluate(model, b.data.test)
    plan = {l.name: Option(sparsity=1 - kept[l.name], bits=index_bits(b.name, l), codebook=32) for l in b.layers}
    model = apply_(plain_(model), plan)
    shared = b.data.evaluate(model, b.data.test)
    b.tune(model)                                 # the centroids: each moves by its weights' summed gradients
    b.add("Deep Compression: prune, share, Huffman", model, b.spec, b.names, shared, time.perf_counter() - start,
          f"pruned and retrained {pruned:.2%}; shared before retraining {shared:.2%}")


def low_rank_plus_sparse(b: Bench) -> None:
    start = time.perf_counter()
    plan = {}
    for layer in b.layers:
        rows, cols = layer.matrix_shape
        if layer.n_weights < 10_000:
            plan[layer.name] = Option()
            continue
        rank = max(1, round(min(rows, cols) / 16))
        plan[layer.name] = Option(method="lowrank_sparse", rank=rank, density=0.03, data_aware=True)
    model = apply_(copy.deepcopy(b.model), plan, calibration=b.calibration)
    before = b.data.evaluate(model, b.data.test)
    b.tune(model)
    b.add("low rank plus sparse (after Yu et al.)", model, b.spec, b.names, before, time.perf_counter() - start,
          "rank 1/16, S at 3% of the weights, fitted to feature maps; fp32")


def hsiao(b: Bench) -> None:
    start = time.perf_counter()
    model, spec, notes, lr = copy.deepcopy(b.model), b.spec, [], 0.01
    if any(l.kind == "conv" for l in b.layers):                      # (1) global average pooling
        model = replace_classifier(model, b.example, calibration=b.calibration)
        spec = with_transform(spec, b.example)
        # the least-squares start has large weights: at 0.01 LeNet-5 diverged (NaN); from here on 0.002
        lr = 0.002
        notes.append(f"GAP {b.tune(model, 2 * b.epochs, lr):.2%}")
    params = sum(p.numel() for p in model.parameters())
    rounds = 0
    while sum(p.numel() for p in model.parameters()) > 0.5 * params and rounds < 6:   # (2) filters, evenly
        choice = prune_evenly_(model, LayerGraph.trace(model, b.example), 0.25)
        if choice is None:
            break
        spec = record(spec, "prune_channels", **pruning_arguments(choice))
        rounds += 1
        b.tune(model, max(2, b.epochs // 2), lr)
    notes.append(f"{rounds} pruning rounds {b.data.evaluate(model, b.data.test):.2%}")
    for layer in LayerGraph.trace(model, b.example).compressible():                     # (3) SVD of fc layers
        if layer.kind == "linear" and min(layer.matrix_shape) >= 16:
            rank = max(1, min(layer.matrix_shape) // 4)
            model = split_low_rank_(model, layer.name, rank)
            spec = record(spec, "split_low_rank", layer=layer.name, rank=rank)
            notes.append(f"{layer.name} rank {rank}")
    if spec.get("transforms", [{}])[-1].keys() == {"split_low_rank"}:
        notes.append(f"SVD {b.tune(model, None, lr):.2%}")
    layers = LayerGraph.trace(model, b.example).compressible()
    names = [l.name for l in layers]
    plan = {l.name: Option(bits=6 if l.kind == "conv" else 5, codebook=16) for l in layers}   # (4) 16-bit codebook
    model = apply_(model, plan)
    before = b.data.evaluate(model, b.data.test)
    b.tune(model, None, lr)
    b.add("Hsiao: GAP, prune evenly, SVD, 16-bit codebook", model, spec, names, before, time.perf_counter() - start,
          "; ".join(notes))


def search(b: Bench, budget: int, label: str, classifier: str | None = None) -> None:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(model=b.name, budget=str(budget), grid="full", structured=True, classifier=classifier,
                           classifier_epochs=2 * b.epochs, trials=300, top_k=3, finetune_epochs=b.epochs,
                           results_dir=tmp, run_id="search")
        summary, folder = run(config)
        compressed, _ = artifact.load(folder / "model.hws")
        plan = json.loads((folder / "plan.json").read_text())
        labels = [f"{key}: {(UnitOption if d.get('kind') == 'channels' else Option).from_dict(d).label}"
                  for key, d in plan.items()]
        b.rows.append({"model": b.name, "method": f"hwsearch {label}", "stored_weights": stored_weights(compressed),
                       "params": sum(p.numel() for p in b.model.parameters()), "bytes": summary["final"]["size_bytes"],
                       "ratio": b.baseline_bytes / summary["final"]["size_bytes"], "accuracy_baseline": b.accuracy,
                       "accuracy_compressed": summary["final"]["accuracy_before_finetune"],
                       "accuracy_retrained": summary["final"]["test_accuracy"],
                       "seconds": round(time.perf_counter() - start, 1),
                       "note": f"budget {budget:,} B; " + "; ".join(labels)})
    print(f"{b.name:22s} hwsearch {label:25s} {b.rows[-1]['bytes']:9,d} B {b.rows[-1]['ratio']:6.1f}x "
          f"acc {b.accuracy:.2%} -> {b.rows[-1]['accuracy_retrained']:.2%}", flush=True)


def markdown(rows: list[dict], baselines: dict, command: str) -> str:
    fashion = all(r["model"].endswith("_fashion") for r in rows)
    data = ("Fashion-MNIST (55,000 train, 5,000 validation, 10,000 test images, 28x28). " if fashion else
            "Digits (scikit-learn, 1,797 8x8 scans; 1,257 train, 270 validation, 270 test) resized to each network's "
            "input. ")
    accuracy = ("Accuracy is top-1 on the 10,000 test images (one image is 0.01 points)." if fashion else
                "Accuracy is top-1 on the 270 test images (one image is 0.37 points).")
    lines = ["# The papers' compression tables at small scale", "",
             f"Written by `{command}`. {data}Sizes are bytes of `model.hws` files on "
             "disk, header, biases and checksum included; ratio against the fp32 file of the same network. "
             f"{accuracy}", ""]
    for name in dict.fromkeys(r["model"] for r in rows):
        base = baselines[name]
        lines += [f"## {name}", "", f"fp32: {base['params']:,} parameters, {base['bytes']:,} bytes, test accuracy "
                  f"{base['accuracy']:.2%}.", "",
                  "| method | stored weights | file bytes | ratio | accuracy: compressed -> retrained | time | notes |",
                  "|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["model"] == name):
            lines.append(f"| {r['method']} | {r['stored_weights']:,} | {r['bytes']:,} | {r['ratio']:.1f}x | "
                         f"{r['accuracy_compressed']:.2%} -> {r['accuracy_retrained']:.2%} | {r['seconds']:.0f} s | "
                         f"{r['note']} |")
        lines += ["", "The papers, on their data:", ""] + [f"- {who}: {what}" for who, what in
                                                         PAPERS[PAPER_NAME.get(name, name)]] + [""]
    return "\n".join(lines)


def main() -> None:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each retraining")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results"))
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--name", default="paper_tables", help="file names of the results (.md, .json)")
    args = parser.parse_args()
    command = "python benchmarks/paper_tables.py" + (f" --models {args.models} --epochs {args.epochs} --name {args.name}"
                                                      if args.name != "paper_tables" else "")
    torch.manual_seed(0)
    rows, baselines = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            b = Bench(name, args.epochs, Path(tmp))
            baselines[name] = {"params": sum(p.numel() for p in b.model.parameters()), "bytes": b.baseline_bytes,
                               "accuracy": b.accuracy}
            deep_compression(b)
            low_rank_plus_sparse(b)
            hsiao(b)
            if not args.skip_search:
                dc = next(r for r in b.rows if r["method"].startswith("Deep Compression"))["bytes"]
                search(b, dc, "at Deep Compression's size")
                search(b, dc // 2, "at half of it")
                if any(l.kind == "conv" for l in b.layers):
                    search(b, dc // 2, "at half of it, GAP classifier first", classifier="gap")
            rows += b.rows
            out = Path(args.out)
            (out / f"{args.name}.json").write_text(json.dumps({"baselines": baselines, "rows": rows}, indent=1) + "\n")
            (out / f"{args.name}.md").write_text(markdown(rows, baselines, command) + "\n")


if __name__ == "__main__":
    main()
