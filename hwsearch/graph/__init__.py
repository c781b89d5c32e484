"""The one core data structure: a model's layers as a graph, traced once.

    graph = LayerGraph.trace(model, example_input)    # torch.fx -> networkx, shapes propagated
    conv = graph.layer("layer1.0.conv1")              # shapes, MACs, weight bytes
    for group in graph.coupling_groups(): ...         # a residual add ties output channels

Everything else (options, proxy, costs, structured pruning) is a client of `LayerGraph`.
`layer_graph` holds `LayerGraph`, `layer` the `Layer` record; `ops` recognises the ops that cost time
besides the compressible layers (pooling, residual adds, products between activations).
"""
from hwsearch.graph.layer_graph import Layer, LayerGraph

__all__ = ["Layer", "LayerGraph"]
