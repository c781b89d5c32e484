"""The accuracy proxy: how much each (layer, option) would cost the model's outputs.

    table, reused = cached_proxy_table(model, layers, options, calibration, cache_dir)
    table.combined("weighted").scores["layer1.0.conv1"][i]    # what the search adds up

`table` measures every option's feature-map reconstruction error on calibration inputs
(and its exact bytes) and caches the table on disk; `divergence` measures how far the
model's outputs move: each layer's sensitivity, which weights the errors into the default
score, and the end-to-end divergence of whole plans reported for retrained candidates.
`streaming` builds the table of a model whose layers' inputs would not fit in memory (ImageNet
size): layer groups, calibration batches, errors at sampled positions, Fisher sensitivities.
Each layer's row is one call, which a Dask cluster can run (`hwsearch.cluster`); a run hands
its cached table to the workers that join its study (`shared_entry`, `put_shared_entry`).
"""
from hwsearch.proxy.divergence import PlanScorer, end_to_end, fisher_sensitivity, layer_sensitivity, output_divergence
from hwsearch.proxy import streaming
from hwsearch.proxy.table import (COMBINE, ProxyTable, build_proxy_table, cached_proxy_table, proxy_cache_file,
                                  put_shared_entry, shared_entry, streams)

__all__ = ["COMBINE", "PlanScorer", "ProxyTable", "build_proxy_table", "cached_proxy_table", "end_to_end",
           "fisher_sensitivity", "layer_sensitivity", "output_divergence", "proxy_cache_file", "put_shared_entry",
           "shared_entry", "streaming", "streams"]
