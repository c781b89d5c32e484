"""Training and evaluation loops shared by pre-training and by retraining candidates."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hwsearch.data import Split


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    batch_size: int = 64
    max_lr: float = 0.1          # one-cycle peak (Smith 2018); ramps up then anneals to ~0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    max_shift: int = 1           # random translation in pixels: the only augmentation digits needs
    seed: int = 0


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `max_shift` pixels, filling with the border value."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape                                     # x: (N, C, H, W)
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, x.shape[1], h, w + 2 * max_shift)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, x.shape[1], h, w)
    return out.gather(3, cols)


def train(model: nn.Module, data: Split, config: TrainConfig, progress=None, description: str = "training") -> None:
    """SGD with a one-cycle schedule; `progress` is an optional rich Progress to report epochs on."""
    generator = torch.Generator().manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.max_lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    steps_per_epoch = -(-len(data.y) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.max_lr, epochs=config.epochs,
                                                   steps_per_epoch=steps_per_epoch)
    task = progress.add_task(description, total=config.epochs) if progress else None
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(data.y), generator=generator)
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            x = random_shift(data.x[batch], config.max_shift, generator)
            loss = F.cross_entropy(model(x), data.y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if progress:
            progress.advance(task)
    model.eval()
    if progress:
        progress.remove_task(task)


@torch.no_grad()
def accuracy(model: nn.Module, data: Split, batch_size: int = 512) -> float:
    """Top-1 accuracy in [0, 1], in eval mode."""
    model.eval()
    correct = 0
    for start in range(0, len(data.y), batch_size):
        logits = model(data.x[start:start + batch_size])
        correct += (logits.argmax(1) == data.y[start:start + batch_size]).sum().item()
    return correct / len(data.y)
