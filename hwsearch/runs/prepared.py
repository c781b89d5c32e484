"""The stages that do not depend on the hardware: model, classifier replacement, layer graph,
options and proxy table.

Built once by `prepare`; a co-design sweep or a nightly matrix passes the `Prepared` to
every run on the same model instead of rebuilding it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from hwsearch.cluster import Pool
from hwsearch.compression import Option, layer_options, replace_classifier, with_transform
from hwsearch.config import RunConfig, resolve_device
from hwsearch.export import artifact
from hwsearch.graph import Layer, LayerGraph
from hwsearch.proxy import ProxyTable, cached_proxy_table, proxy_cache_file, streaming, streams
from hwsearch.runs.progress import Laps, say_to
from hwsearch import storage as storages
from hwsearch.workloads import TrainConfig, Workload, open_workload, train, usable_cache_dir


@dataclass
class Prepared:
    """What a run needs that does not depend on the hardware: the trained model (its classifier
    replaced when asked) and its data, the layer graph, the options and the proxy table."""
    key: tuple                        # the config fields it depends on (prepare_key)
    workload: Workload
    graph: LayerGraph
    layers: list[Layer]
    options: dict[str, list[Option]]
    fixed_bytes: int                  # the file's bytes outside the compressible layers
    proxy: ProxyTable                 # scored as config.proxy says
    calibration: torch.Tensor
    proxy_source: str                 # "computed" or "from cache" (the disk cache)
    replaced: dict | None             # the classifier replacement's report, if any
    timings_s: dict[str, float]       # workload, classifier, tables_proxy
    proxy_file: Path | None = None    # the table's cache file, when a database storage lets workers join and fetch it

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]


def prepare_key(config: RunConfig) -> tuple:
    """The fields of a run config that shape the `Prepared` tables."""
    return (config.model, config.data, config.input, config.eval, config.loss, config.calibration_size,
            config.cache_dir, config.grid, config.proxy, config.classifier, config.classifier_epochs,
            config.finetune_lr, config.seed)


def prepare(config: RunConfig, progress=None, say=None, *, workload: Workload | None = None,
            pool: Pool | None = None) -> Prepared:
    """Load (or train) the model, replace its classifier if asked, trace it, list the options and
    build (or read) the proxy table, which also measures every option's exact bytes.

    `workload`: the model and data already opened (objects passed to `hwsearch.search`); `pool`: a
    cluster the proxy table's rows are computed on (`hwsearch.cluster`), else this process.
    """
    say = say or say_to(progress)
    lap = Laps()
    device = resolve_device(config.device)
    if device != "cpu":
        say(f"device: {device} ({torch.cuda.get_device_name(device)})")
    given = workload is not None
    if given:
        workload.data = replace(workload.data, device=device)
    workload = workload or open_workload(config, progress, warn=say, device=device)
    data = workload.data
    say(f"model {config.model}: test {data.metric_name} {workload.test_accuracy:.2%} "
        f"({'trained now' if workload.trained_now else 'from cache' if ':' not in config.model and not given else 'as given'})")
    lap("workload")
    replaced = None
    if config.classifier:             # a whole-model option, chosen before the per-layer search
        replaced = replace_classifier_(workload, config, progress)
        say(f"classifier replaced by global average pooling and one linear layer: {replaced['params_before']:,} -> "
            f"{replaced['params_after']:,} parameters, test {data.metric_name} {replaced['test_accuracy']:.2%} "
            f"after {config.classifier_epochs} epochs")
        lap("classifier")
    model = workload.model
    graph = LayerGraph.trace(model, workload.example)
    layers = graph.compressible()
    options = {layer.name: layer_options(layer, config.grid) for layer in layers}
    fixed = artifact.fixed_bytes(model, model_spec=workload.model_spec, layer_names=[l.name for l in layers])
    calibration = data.train.take(config.calibration_size)
    table, reused = cached_proxy_table(model, layers, options, calibration, usable_cache_dir(config.cache_dir),
                                       progress, warn=say, device=device, pool=pool)
    say(f"proxy table: {'from cache' if reused else 'computed' if pool is None else 'computed on the cluster'}")
    lap("tables_proxy")
    shared = None
    if storages.kind(config.storage) != "journal":        # workers may join this run's study: hand them the table
        shared = proxy_cache_file(model, layers, options, calibration, usable_cache_dir(config.cache_dir))
    if streams(model, layers, calibration):
        # a streamed table fitted its options on the first images only: retraining and the end-to-end
        # scores refit on those same images, so the run exports the fits it priced, in bounded memory
        calibration = calibration[:streaming.FIT_IMAGES]
    return Prepared(prepare_key(config), workload, graph, layers, options, fixed, table.combined(config.proxy),
                    calibration, "from cache" if reused else "computed", replaced, lap.timings, shared)


def prepare_or_reuse(config: RunConfig, progress, say, prepared: Prepared | None,
                     workload: Workload | None = None, pool: Pool | None = None) -> Prepared:
    """`prepared` if given (checked to be for this config), else `prepare(config)`."""
    if prepared is None:
        return prepare(config, progress, say, workload=workload, pool=pool)
    if prepared.key != prepare_key(config):
        raise RuntimeError(f"bug: tables prepared for {prepared.key} reused for {prepare_key(config)}")
    say(f"model and proxy table reused (prepared once for several runs; proxy table {prepared.proxy_source})")
    return prepared


def replace_classifier_(workload: Workload, config: RunConfig, progress=None) -> dict:
    """Replace the workload's fully connected classifier by GAP and one linear layer (Hsiao 2017) and
    retrain; in place. The baseline accuracy stays the original model's: the floor is measured from it."""
    model, data = workload.model, workload.data
    calibration = data.train.take(config.calibration_size)
    replaced = replace_classifier(model, workload.example, calibration=calibration)
    # a fifth of the fine-tuning rate: the least-squares start has large weights (LeNet-5 diverged at 0.01)
    train(replaced, data, TrainConfig(epochs=config.classifier_epochs, max_lr=config.finetune_lr / 5,
                                      seed=config.seed, max_shift=data.max_shift), progress,
          "retraining the replaced classifier")
    report = {"method": config.classifier, "params_before": sum(p.numel() for p in model.parameters()),
              "params_after": sum(p.numel() for p in replaced.parameters()),
              "test_accuracy": data.evaluate(replaced, data.test), "epochs": config.classifier_epochs}
    workload.model, workload.model_spec = replaced.eval(), with_transform(workload.model_spec, workload.example)
    return report
