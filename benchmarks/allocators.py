"""How two other tools allocate per-layer compression, rebuilt on hwsearch's tables for the benchmarks.

- `hawq_plan`: HAWQ-V3 (Yao et al. 2021): per layer the Hessian trace of the loss with respect to
  its weights (Hutchinson's estimator, Rademacher probes), times the squared quantization error of
  each bit width, is the layer's sensitivity to that width; an integer linear program (scipy's
  MILP, HiGHS) picks one width per layer minimising the summed sensitivity within the size budget.
  Widths: fp32 and uniform 8, 6, 4, 3 and 2 bits (HAWQ-V2's range, wider than the grid's), no
  pruning or low rank (HAWQ quantizes only); bytes are the file's, measured on the quantized layer.
- `aimet_plan`: AIMET's greedy compression-ratio selection (Qualcomm's AI Model Efficiency Toolkit):
  every layer compressed alone at each candidate setting and the model evaluated on held-out
  images (here 1,000 validation images, no fine-tuning); then a bisection on an accuracy threshold
  picks, per layer, the smallest setting that keeps at least that accuracy, the highest threshold
  whose plan fits the budget. Candidates: each layer's options no other beats on bytes and proxy.

Neither tool installs here (AIMET needs its own torch build; HAWQ's code is a research repository),
so these are their published algorithms on the same options, sizes and fine-tuning as every other
method: what differs is only how the plan is chosen.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.optimize import Bounds, LinearConstraint, milp

from hwsearch.budget import Budgets
from hwsearch.compression import Option, apply_, compress, layer_nbytes
from hwsearch.compression.layer import plain_layer
from hwsearch.study import non_dominated

HAWQ_BITS = (32, 8, 6, 4, 3, 2)
PROBES = 32
EVAL_IMAGES = 1000


def hutchinson_traces(model: torch.nn.Module, names: list[str], x: torch.Tensor, y: torch.Tensor,
                      probes: int = PROBES, seed: int = 0) -> dict[str, float]:
    """Tr(H_l) per layer's weight: E[v^T H v] over Rademacher vectors v (Hessian-vector products by autograd)."""
    model = copy.deepcopy(model).eval()
    weights = [model.get_submodule(n).weight for n in names]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, weights, create_graph=True)
    generator = torch.Generator().manual_seed(seed)
    traces = np.zeros(len(names))
    for _ in range(probes):
        vs = [torch.randint(0, 2, w.shape, generator=generator).float() * 2 - 1 for w in weights]
        hvs = torch.autograd.grad(grads, weights, grad_outputs=vs, retain_graph=True)
        traces += [float((hv * v).sum()) for hv, v in zip(hvs, vs)]
    return dict(zip(names, traces / probes))


def hawq_plan(t, budgets: Budgets, *, samples: int = 512) -> dict[str, Option] | None:
    """HAWQ-V3's allocation: min sum_l Tr(H_l)/n_l ||Q_b(W_l) - W_l||^2 within the size budget; a plan of options
    (not indices into the grid: 3 and 2 bits are not in it)."""
    work, names = t.work, t.names
    x, y = next(iter(work.data.train.batches(samples)))
    traces = hutchinson_traces(work.model, names, x, y)
    rows, sensitivity, size = [], [], []
    for name in names:
        module = work.model.get_submodule(name)
        for bits in HAWQ_BITS:
            option = Option(bits=bits)
            compressed = compress(module, option)
            quantized = plain_layer(compressed).weight.detach()
            error = float((quantized.reshape(module.weight.shape) - module.weight.detach()).square().sum())
            rows.append((name, option))
            sensitivity.append(traces[name] / module.weight.numel() * error)
            size.append(float(layer_nbytes(compressed)))
    n = len(rows)
    one_per_layer = np.array([[1.0 if rows[j][0] == name else 0.0 for j in range(n)] for name in names])
    room = budgets.size_bytes - t.costs.fixed_bytes
    result = milp(c=np.asarray(sensitivity), integrality=np.ones(n), bounds=Bounds(0, 1),
                  constraints=[LinearConstraint(one_per_layer, 1, 1), LinearConstraint(np.asarray(size)[None], 0, room)])
    if not result.success:
        return None
    return {rows[j][0]: rows[j][1] for j in np.flatnonzero(result.x > 0.5)}


def plan_bytes(t, plan: dict[str, Option]) -> int:
    """The file size of a plan: the fixed bytes and each layer's, measured on the compressed layer."""
    return t.costs.fixed_bytes + sum(layer_nbytes(compress(t.work.model.get_submodule(n), o)) for n, o in plan.items())


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model.eval()(x).argmax(1) == y).float().mean())


def layer_scores(t, space: dict[str, list[int]], images: int = EVAL_IMAGES) -> dict[str, dict[int, float]]:
    """Accuracy on `images` validation images with one layer compressed at one option, every other layer intact."""
    x, y = next(iter(t.work.data.val.batches(images)))
    scores = {}
    for name in t.names:
        scores[name] = {}
        for index in space[name]:
            model = copy.deepcopy(t.work.model)
            apply_(model, {name: t.options[name][index]}, calibration=t.calibration)
            scores[name][index] = _accuracy(model, x, y)
    return scores


def aimet_plan(t, budgets: Budgets, scores: dict[str, dict[int, float]] | None = None) -> dict[str, int] | None:
    """AIMET's greedy selection: the highest accuracy threshold at which each layer's smallest option meeting
    it gives a plan within the budget."""
    space = aimet_space(t)
    scores = scores or layer_scores(t, space)
    size = {name: t.costs.column(name, "weight_bytes") for name in t.names}

    def plan_at(threshold: float) -> dict[str, int]:
        choice = {}
        for name in t.names:
            meeting = [i for i in space[name] if scores[name][i] >= threshold] or [max(space[name],
                                                                                         key=lambda i: scores[name][i])]
            choice[name] = min(meeting, key=lambda i: size[name][i])
        return choice

    low, high = 0.0, 1.0
    if t.costs.totals(plan_at(low))["size_bytes"] > budgets.size_bytes:
        return None
    for _ in range(30):                               # bisection on the threshold
        middle = (low + high) / 2
        if t.costs.totals(plan_at(middle))["size_bytes"] <= budgets.size_bytes:
            low = middle
        else:
            high = middle
    return plan_at(low)


def aimet_space(t) -> dict[str, list[int]]:
    """Per layer, the options no other beats on both bytes and proxy (AIMET's candidate ratios, on our grid)."""
    return {name: non_dominated(t.proxy.scores[name], t.costs.column(name, "weight_bytes")) for name in t.names}
