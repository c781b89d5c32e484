"""How far a model's outputs move: what turns per-layer errors into a plan's score.

A plain sum of these errors treats every layer alike, but the network amplifies an error
in some layers far more than in others. Two refinements, measured against accuracy after
retraining by benchmarks/proxy_fidelity.py:

- `layer_sensitivity`: per layer, how far the model's output moves (`output_divergence`)
  when that layer's output gets a random error of known relative size; the weighted score
  `sum_l s_l * e_l^2` is the second-order estimate of the output divergence of a plan
  (errors of different layers taken as independent). It stays separable, so the exact
  solver and the study can use it.
- `end_to_end`: the output divergence of the whole compressed model on calibration images.
  Not separable and a forward pass per plan, so the search cannot use it; the run reports it
  for the retrained candidates.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hwsearch.compression import Fitter, Option, apply_, capture_inputs, compress
from hwsearch.graph import Layer
from hwsearch.workloads import on_device


def output_divergence(reference: torch.Tensor, output: torch.Tensor) -> float:
    """How far `output` is from `reference`, averaged over the batch.

    Class scores (N, classes): KL(softmax(reference) || softmax(output)) in nats, the loss
    a classifier's predictions suffer. Anything else: squared relative error.
    """
    if reference.dim() == 2:
        log_p, log_q = F.log_softmax(reference.double(), dim=1), F.log_softmax(output.double(), dim=1)
        return float((log_p.exp() * (log_p - log_q)).sum(dim=1).mean())
    return float((output - reference).double().square().sum() / reference.double().square().sum().clamp_min(1e-24))


@torch.no_grad()
def layer_sensitivity(model: nn.Module, layers: list[Layer], calibration: torch.Tensor, *,
                      relative_error: float = 0.1, repeats: int = 2, seed: int = 0, progress=None,
                      device: str = "cpu") -> dict[str, float]:
    """Output divergence per unit of squared relative error at each layer's output.

    Gaussian noise scaled to `relative_error` x ||y|| is added to one layer's output at a
    time; s_l = divergence / relative_error^2, averaged over `repeats` draws (drawn on the CPU
    from the seed, so that a GPU run adds the same noise).
    """
    with on_device(model, device):
        return _sensitivity(model.eval(), layers, calibration.to(device), relative_error, repeats, seed, progress)


def _sensitivity(model, layers, calibration, relative_error, repeats, seed, progress) -> dict[str, float]:
    reference = model(calibration)
    generator = torch.Generator().manual_seed(seed)
    task = progress.add_task("layer sensitivities", total=len(layers)) if progress else None
    out = {}
    for layer in layers:
        def hook(module, args, y):
            noise = torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
            return y + noise * (relative_error * y.norm() / noise.norm().clamp_min(1e-24))
        handle = model.get_submodule(layer.name).register_forward_hook(hook)
        try:
            moved = [output_divergence(reference, model(calibration)) for _ in range(repeats)]
        finally:
            handle.remove()
        out[layer.name] = float(np.mean(moved)) / relative_error ** 2
        if progress:
            progress.advance(task)
    if progress:
        progress.remove_task(task)
    return out


def fisher_sensitivity(model: nn.Module, layers: list[Layer], calibration: torch.Tensor, *, draws: int = 2,
                       batch: int = 8, seed: int = 0, device: str = "cpu") -> dict[str, float]:
    """`layer_sensitivity`'s quantity in its second-order form, for every layer from a few backward passes.

    A random error of relative size e on a layer's output y moves the output divergence by
    e^2 * s on average, with s = 1/2 * mean(y^2) * tr(F) / N: F the Fisher information of the
    model's predictions with respect to y (for class scores; the Gauss-Newton matrix of the
    squared relative error otherwise), N the images. tr(F) is estimated from gradients of the
    log-likelihood of labels drawn from the model's own predictions (Hutchinson vectors for
    other outputs), `draws` per image, in batches: all layers' gradients come from one backward
    pass, where `layer_sensitivity` runs the model twice per layer.
    """
    generator = torch.Generator().manual_seed(seed)
    names = [layer.name for layer in layers]
    squares, counts, traces = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0), dict.fromkeys(names, 0.0)
    output_square = 0.0               # the sum of squared outputs, which divides a squared relative error
    was_training = model.training
    with on_device(model.eval(), device):
        outputs: dict[str, torch.Tensor] = {}
        hooks = [model.get_submodule(name).register_forward_hook(
            lambda module, args, y, name=name: outputs.__setitem__(name, y)) for name in names]
        try:
            for images in calibration.split(batch):
                x = images.to(device).requires_grad_(True)
                with torch.enable_grad():
                    out = model(x)
                    held = [outputs[name] for name in names]
                    output_square += float(out.detach().double().square().sum())
                    for name, y in zip(names, held):
                        squares[name] += float(y.detach().double().square().sum())
                        counts[name] += y.numel()
                    for draw in range(draws):
                        if out.dim() == 2:
                            probs = F.softmax(out.detach().double(), dim=1).cpu()
                            labels = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(out.device)
                            objective = F.log_softmax(out, dim=1).gather(1, labels[:, None]).sum()
                        else:
                            v = torch.randn(out.shape, generator=generator).to(out.device, out.dtype)
                            objective = (out * v).sum()
                        grads = torch.autograd.grad(objective, held, retain_graph=draw < draws - 1)
                        for name, g in zip(names, grads):
                            traces[name] += float(g.double().square().sum()) / draws
        finally:
            for handle in hooks:
                handle.remove()
            model.train(was_training)
    # KL's second-order term is half the Fisher form, averaged over images; a squared relative error is
    # the Gauss-Newton form over the whole batch, divided by its squared outputs
    per = 2 * len(calibration) if out.dim() == 2 else output_square
    return {name: squares[name] / counts[name] * traces[name] / per for name in names}


@torch.no_grad()
def end_to_end(model: nn.Module, compressed: nn.Module, calibration: torch.Tensor) -> float:
    """Output divergence of a whole compressed model from the original on calibration inputs."""
    return output_divergence(model.eval()(calibration), compressed.eval()(calibration))


class PlanScorer:
    """`end_to_end` for many plans of one model: each (layer, option) is fitted once and shared.

    Plans in a shortlist differ in a few layers, so building each plan's model from cached
    compressed layers (fitted on the layers' calibration inputs, decompositions shared by a
    layer's options) costs little more than its forward pass.
    """

    def __init__(self, model: nn.Module, calibration: torch.Tensor):
        self.model, self.calibration = model.eval(), calibration
        with torch.no_grad():
            self.reference = model(calibration)
        self._fitters: dict[str, Fitter] = {}
        self._layers: dict[tuple[str, Option], nn.Module] = {}

    @torch.no_grad()
    def __call__(self, plan: dict) -> float:
        if any(not isinstance(option, Option) for option in plan.values()):     # channel groups reshape the model
            model = apply_(copy.deepcopy(self.model), plan, calibration=self.calibration)
            return output_divergence(self.reference, model.eval()(self.calibration))
        missing = [name for name in plan if name not in self._fitters]
        inputs = capture_inputs(self.model, missing, self.calibration) if missing else {}
        for name in missing:
            self._fitters[name] = Fitter(self.model.get_submodule(name), inputs[name])
        for name, option in plan.items():
            if (name, option) not in self._layers:
                self._layers[name, option] = compress(self._fitters[name].module, option,
                                                      fitter=self._fitters[name]).eval()
        model = _with_layers(self.model, {name: self._layers[name, option] for name, option in plan.items()})
        return output_divergence(self.reference, model(self.calibration))


def _with_layers(model: nn.Module, swaps: dict[str, nn.Module]) -> nn.Module:
    """A copy of `model` with the named submodules replaced; every other module (and weight) is shared."""
    out = copy.copy(model)
    out._modules = dict(model._modules)
    children: dict[str, dict[str, nn.Module]] = {}
    for name, module in swaps.items():
        head, _, rest = name.partition(".")
        if rest:
            children.setdefault(head, {})[rest] = module
        else:
            out._modules[head] = module
    for head, inner in children.items():
        out._modules[head] = _with_layers(model._modules[head], inner)
    return out
