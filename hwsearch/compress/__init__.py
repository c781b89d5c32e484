"""Compression operators: a plan of per-layer options applied to a model in place.

    apply_(model, {"layer1.0.conv1": Option(rank=16, bits=4), "fc": Option(sparsity=0.9)})

One interface (`Operator`: a layer's `structure` from shapes, its `fit` from weights or
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
  al.), searched as units (`hwsearch.units`) through `UnitOption`;
- `classifier` and `transforms`: whole-model changes made before the per-layer plan (GAP
  classifier, channels pruned in rounds, low-rank splits), recorded so the file reloads them.
"""
from hwsearch.compress import dense, lowrank, lowrank_sparse  # noqa: F401  (registers the operators)
from hwsearch.compress._base import (OPERATORS, Fitted, Fitter, Geometry, Operator, Step, Structure, Svd,
                                     factor_shapes, operator_for, register, structure_of)
from hwsearch.compress.encoding import (decode_layer, encode_layer, estimate_layer_nbytes, factor_nbytes,
                                        layer_nbytes)
from hwsearch.compress.factors import Factor, kept_count, magnitude_mask, quantize, top_k_mask
from hwsearch.compress.layer import CompressedLayer, apply_, capture_inputs, compress, make_factor, svd
from hwsearch.compress.sharing import SharedFactor, kmeans_1d

__all__ = ["OPERATORS", "CompressedLayer", "Factor", "Fitted", "Fitter", "Geometry", "Operator", "SharedFactor",
           "Step", "Structure", "Svd", "apply_", "capture_inputs", "compress", "decode_layer", "encode_layer",
           "estimate_layer_nbytes", "factor_nbytes", "factor_shapes", "kept_count", "kmeans_1d", "layer_nbytes",
           "magnitude_mask", "make_factor", "operator_for", "quantize", "register", "structure_of", "svd",
           "top_k_mask"]
