"""Compression: the per-layer options, the grid the search chooses from, and the operators that
apply a plan of options to a model in place.

    options = layer_options(layer, "default")          # what the search may choose for one layer
    apply_(model, {"layer1.0.conv1": Option(rank=16, bits=4), "fc": Option(sparsity=0.9)})

`options` is the value type (`Option`, frozen and versioned; a `Plan` maps layer names to
options) and `grid` the options offered per layer (`classic`, `default`, `full`). One
interface (`Operator`: a layer's `structure` from shapes, its `fit` from weights or
feature maps) and one module per family:

- `dense`: the layer kept whole;
- `lowrank`: truncated SVD (channel factorisation), spatial separation, Tucker-2, each
  from the weights or fitted to the output feature maps (Zhang et al. 2015);
- `lowrank_sparse`: W = L + S (after Yu et al. 2017), greedy bilateral on feature maps or
  alternating projection on weights;
- `factors` and `sharing`: what every factor then becomes, pruned by magnitude and stored
  as uniform per-row codes or as indices into a k-means codebook (Deep Compression);
- `encoding`: the bytes of a layer (sparse positions as a bitmask or relative indices,
  Huffman-coded streams) and their exact count;
- `channels`: structured pruning of filters and channels per channel group (Li et al., He et
  al.), searched as units (`hwsearch.study.units`) through `UnitOption`;
- `classifier` and `transforms`: whole-model changes made before the per-layer plan (GAP
  classifier, channels pruned in rounds, low-rank splits), recorded so the file reloads them.
"""
from hwsearch.compression import dense, lowrank, lowrank_sparse  # noqa: F401  (registers the operators)
from hwsearch.compression._base import (OPERATORS, Fitted, Fitter, Geometry, Operator, Step, Structure, Svd,
                                     factor_shapes, operator_for, register, structure_of)
from hwsearch.compression.encoding import (decode_layer, encode_layer, estimate_layer_nbytes, factor_nbytes,
                                        layer_nbytes)
from hwsearch.compression.factors import Factor, kept_count, magnitude_mask, quantize, top_k_mask
from hwsearch.compression.layer import CompressedLayer, apply_, capture_inputs, compress, make_factor, svd
from hwsearch.compression.sharing import SharedFactor, kmeans_1d
from hwsearch.compression.options import METHODS, OPTION_VERSION, Option, Plan
from hwsearch.compression.grid import GRIDS, layer_options
from hwsearch.compression.classifier import replace_classifier, with_transform

__all__ = ["GRIDS", "METHODS", "OPERATORS", "OPTION_VERSION", "Option", "Plan", "layer_options",
           "replace_classifier", "with_transform", "CompressedLayer", "Factor", "Fitted", "Fitter", "Geometry", "Operator", "SharedFactor",
           "Step", "Structure", "Svd", "apply_", "capture_inputs", "compress", "decode_layer", "encode_layer",
           "estimate_layer_nbytes", "factor_nbytes", "factor_shapes", "kept_count", "kmeans_1d", "layer_nbytes",
           "magnitude_mask", "make_factor", "operator_for", "quantize", "register", "structure_of", "svd",
           "top_k_mask"]
