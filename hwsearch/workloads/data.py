"""The data a run sees: train (fine-tuning, calibration), validation (choosing among
retrained candidates) and test (the figure we report), with the metric and the loss.

A split is either a pair of tensors (inputs, labels) or a DataLoader yielding such pairs;
both answer `batches()` and `take()`, so training, calibration and evaluation do not care
which. The built-in data sets are modules of their own (`digits`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from hwsearch.errors import DataError


@dataclass(frozen=True)
class Split:
    """Tensors in memory: shuffled and batched by us."""
    x: torch.Tensor   # (N, ...) inputs
    y: torch.Tensor   # (N, ...) labels or targets

    def __len__(self) -> int:
        return len(self.y)

    @property
    def source(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x, self.y

    def steps(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[tuple]:
        """Mini-batches; shuffled when a generator is given (training), in order otherwise."""
        order = torch.randperm(len(self), generator=generator) if generator is not None else None
        for start in range(0, len(self), batch_size):
            index = order[start:start + batch_size] if order is not None else slice(start, start + batch_size)
            yield self.x[index], self.y[index]

    def take(self, n: int) -> torch.Tensor:
        return self.x[:n]


@dataclass(frozen=True)
class LoaderSplit:
    """A user's DataLoader (or any re-iterable of (inputs, labels)): batching and shuffling are its own."""
    loader: Iterable
    name: str = "split"

    def __len__(self) -> int:
        dataset = getattr(self.loader, "dataset", None)
        return len(dataset) if dataset is not None else sum(len(y) for _, y in self.batches())

    @property
    def source(self) -> Iterable:
        return self.loader

    def steps(self, batch_size: int) -> int:
        try:
            return len(self.loader)
        except TypeError:
            return sum(1 for _ in self.batches())

    def batches(self, batch_size: int | None = None, generator: torch.Generator | None = None) -> Iterator[tuple]:
        for item in self.loader:
            if not (isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[0], torch.Tensor)):
                raise DataError(f"the {self.name} DataLoader must yield (inputs, labels) pairs of tensors, "
                                f"got {type(item).__name__}")
            yield item[0], item[1]

    def take(self, n: int) -> torch.Tensor:
        parts, have = [], 0
        for x, _ in self.batches():
            parts.append(x[:n - have])
            have += len(parts[-1])
            if have >= n:
                break
        return torch.cat(parts)


@dataclass(frozen=True)
class DatasetSplit:
    """A torch `Dataset` of (input, label) pairs, served by DataLoaders: shuffled by our generator
    when training (so that a seed gives the same batches), in order otherwise; the host memory
    of batches is pinned where a GPU will take them."""
    dataset: Dataset
    name: str = "split"
    workers: int = 0                  # DataLoader worker processes (decoding files); 0: in this process

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def source(self) -> DataLoader:
        return self.loader(256)

    def loader(self, batch_size: int, generator: torch.Generator | None = None) -> DataLoader:
        return DataLoader(self.dataset, batch_size=batch_size, shuffle=generator is not None, generator=generator,
                          num_workers=self.workers, pin_memory=torch.cuda.is_available(),
                          persistent_workers=False)

    def steps(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batches(self, batch_size: int = 256, generator: torch.Generator | None = None) -> Iterator[tuple]:
        try:
            yield from self.loader(batch_size, generator)
        except DataError as exc:      # raised in a worker process: its message comes back inside a traceback
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise DataError(lines[-1].split("Error: ", 1)[-1] if len(lines) > 1 else str(exc)) from None

    def take(self, n: int) -> torch.Tensor:
        """The first `n` inputs, in order: the same calibration images on every run."""
        return next(iter(self.batches(min(n, len(self)))))[0]


AnySplit = Split | LoaderSplit | DatasetSplit
Metric = Callable[[nn.Module, Any], float]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Data:
    """The three splits, and how a model is scored on them and trained on them.

    `metric(model, split.source)` is higher-is-better (None: top-1 accuracy); `loss(outputs,
    labels)` trains (None: cross-entropy); `max_shift` and `flip` are the random translation and
    horizontal flips applied to training images (the built-in data sets: a user's loader does
    its own augmentation); `source` says where the data came from and how it was split (recorded
    in the run's summary).
    """
    train: AnySplit
    val: AnySplit
    test: AnySplit
    metric: Metric | None = None
    loss: Loss | None = None
    max_shift: int = 0
    metric_name: str = field(default="top-1 accuracy")
    flip: bool = False
    source: dict | None = None
    device: str = "cpu"               # where training and top-1 evaluation run ("cuda:0": a GPU)

    def evaluate(self, model: nn.Module, split: AnySplit) -> float:
        """The metric of `model` (in eval mode, no gradients) on one split. Top-1 accuracy runs on `device` (the
        model goes there and comes back); a user's metric gets the model where it is, on the CPU."""
        model.eval()
        with torch.no_grad():
            if self.metric is None:
                with on_device(model, self.device):
                    return top1(model, split)
            value = self.metric(model, split.source)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DataError(f"the metric {self.metric_name} returned {value!r}; return one number, higher is "
                            "better") from None

    def train_loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (self.loss or F.cross_entropy)(outputs, labels)


def top1(model: nn.Module, split: AnySplit, batch_size: int = 512) -> float:
    """Top-1 accuracy in [0, 1], on the device the model is on (mixed precision on a GPU)."""
    device = next(model.parameters(), torch.empty(0)).device
    correct = total = 0
    for x, y in split.batches(batch_size):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    return correct / max(total, 1)


@contextmanager
def on_device(model: nn.Module, device: str | torch.device):
    """`model` on `device` for the block, back where it was after it (nothing moves on the CPU)."""
    home = next(model.parameters(), torch.empty(0)).device
    target = torch.device(device)
    if target == home:
        yield model
        return
    model.to(target)
    try:
        yield model
    finally:
        model.to(home)
