"""Classifier replacement (Hsiao 2017, step 1; as in Network in Network and GoogLeNet): a whole-model option.

The fully connected stack after the last convolution becomes global average pooling and
one linear layer from its channels to the classes, which removes most of a VGG-style
network's weights (VGG-16: 123 M of its 138 M). It changes the architecture, so it is
chosen before the per-layer search, not by it, and needs retraining: the new layer starts
from the least-squares fit of the old logits on calibration images (pooled features to
logits), which fine-tuning then improves.

    model = replace_classifier(model, example, calibration=images)     # a torch.fx GraphModule
    spec = with_transform(spec, example)                                # the file rebuilds it
"""
from __future__ import annotations

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn import functional as F

from hwsearch.errors import ModelError

_HEAD_TYPES = (nn.Linear, nn.ReLU, nn.ReLU6, nn.Dropout, nn.Flatten, nn.Identity, nn.GELU, nn.SiLU, nn.Tanh,
               nn.Sigmoid)
_HEAD_FUNCTIONS = {"flatten", "relu", "dropout", "view", "reshape", "gelu", "silu", "tanh", "sigmoid"}
TRANSFORM = "gap_classifier"


def replace_classifier(model: nn.Module, example: torch.Tensor, *, calibration: torch.Tensor | None = None
                       ) -> fx.GraphModule:
    """`model` with everything after its last conv's feature map replaced by GAP and one linear layer."""
    traced = fx.symbolic_trace(model)
    ShapeProp(traced).propagate(example)
    modules = dict(traced.named_modules())
    convs = [n for n in traced.graph.nodes if n.op == "call_module" and isinstance(modules[n.target], nn.Conv2d)]
    if not convs:
        raise ModelError(f"model {type(model).__name__} has no Conv2d: a classifier after the last conv is what "
                         "replace_classifier replaces")
    features = convs[-1]
    while True:                     # the last 4-D tensor of the single path out of the last conv
        users = list(features.users)
        if len(users) != 1:
            raise ModelError(f"the last conv's output {features.name!r} feeds {len(users)} ops; replace_classifier "
                             "needs one path from the last conv to the output")
        shape = getattr(users[0].meta.get("tensor_meta"), "shape", ())
        if len(shape) != 4:
            break
        features = users[0]
    output = next(n for n in traced.graph.nodes if n.op == "output")
    head, node = [], list(features.users)[0]
    while node is not output:
        if not _is_head(node, modules):
            raise ModelError(f"op {node.name!r} after the last conv is not part of a fully connected classifier "
                             "(linear layers, activations, dropout, flatten); cannot replace it")
        head.append(node)
        users = list(node.users)
        if len(users) != 1:
            raise ModelError(f"op {node.name!r} of the classifier feeds {len(users)} ops; need a single chain")
        node = users[0]
    channels = features.meta["tensor_meta"].shape[1]
    classes = output.args[0].meta["tensor_meta"].shape[-1]
    linear = nn.Linear(channels, classes)
    if calibration is not None:
        _fit(linear, model, traced, features, calibration)
    graph = traced.graph
    with graph.inserting_after(features):
        pooled = graph.call_function(F.adaptive_avg_pool2d, (features, 1))
    with graph.inserting_after(pooled):
        flat = graph.call_function(torch.flatten, (pooled, 1))
    output.args = (flat,)
    graph.eliminate_dead_code()                 # the old head goes, and its modules with it
    traced.delete_all_unused_submodules()
    name = "classifier" if not hasattr(traced, "classifier") else "gap_classifier"
    traced.add_submodule(name, linear)
    with graph.inserting_after(flat):
        logits = graph.call_module(name, (flat,))
    output.args = (logits,)
    traced.recompile()
    return traced.train(model.training)


def _is_head(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], _HEAD_TYPES)
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    return node.op in ("call_function", "call_method") and name in _HEAD_FUNCTIONS


@torch.no_grad()
def _fit(linear: nn.Linear, model: nn.Module, traced: fx.GraphModule, features: fx.Node, x: torch.Tensor) -> None:
    """Least squares (with a small ridge) from the pooled features to the old logits."""
    captured = {}
    interpreter = fx.Interpreter(traced)
    original_run = interpreter.run_node

    def run_node(n):
        out = original_run(n)
        if n is features:
            captured["features"] = out
        return out
    interpreter.run_node = run_node
    was_training = model.training
    traced.eval()
    logits = interpreter.run(x)                                              # (N, classes)
    traced.train(was_training)
    pooled = captured["features"].mean(dim=(2, 3)).double()                 # (N, C)
    design = torch.cat([pooled, torch.ones(len(pooled), 1, dtype=pooled.dtype)], dim=1)
    gram = design.T @ design
    gram += 1e-3 * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    solution = torch.linalg.solve(gram, design.T @ logits.double())          # (C + 1, classes)
    linear.weight.copy_(solution[:-1].T.float())
    linear.bias.copy_(solution[-1].float())


def with_transform(spec: dict, example: torch.Tensor) -> dict:
    """The model spec of a file whose architecture had its classifier replaced (see `transforms`)."""
    return {**spec, "transforms": [*spec.get("transforms", []), {TRANSFORM: {"input": list(example.shape)}}]}
