"""Training and evaluation loops shared by pre-training and by retraining candidates."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hwsearch.workloads.data import AnySplit, Data, Split, top1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    batch_size: int = 64
    max_lr: float = 0.1          # one-cycle peak (Smith 2018); ramps up then anneals to ~0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    max_shift: int = 1           # random translation in pixels: the only augmentation digits needs
    seed: int = 0
    distill: float = 0.0         # weight of the teacher's soft targets (Hinton et al. 2015); 0: labels only
    temperature: float = 4.0     # softening of both distributions when distilling
    schedule: str = "one-cycle"  # or "cosine" (from max_lr down) or "constant"
    channels_last: bool = False  # NHWC while training: 20-40% faster convs on CPUs (measured on the Fashion models)
    max_steps: int | None = None # stop after this many optimizer steps (the schedule spans them); None: every epoch


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


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left to right with probability 1/2."""
    flipped = torch.rand(len(x), generator=generator) < 0.5
    return torch.where(flipped[:, None, None, None], x.flip(-1), x)


def train(model: nn.Module, data: Data | Split, config: TrainConfig, progress=None, description: str = "training",
          *, split: AnySplit | None = None, teacher: nn.Module | None = None) -> None:
    """SGD with a one-cycle schedule on `data.train` (or `split`); `progress` is an optional rich Progress.

    With a `teacher` and `config.distill > 0` the loss mixes the labels' loss with the KL
    divergence to the teacher's softened outputs (scaled by T^2, as Hinton et al. do). It runs on
    `data.device`; on a GPU with automatic mixed precision (bfloat16 where the GPU has it, else
    float16 with a gradient scaler; compressed layers keep their own arithmetic in float32). The
    model is back on the CPU, in eval mode, when it returns.
    """
    if isinstance(data, Split):              # a bare split: cross-entropy, the config's augmentation
        data, split = Data(data, data, data, max_shift=config.max_shift), data
    split = split or data.train
    device = torch.device(data.device)
    model.to(device)
    if teacher is not None:
        teacher.to(device).eval()
    generator = torch.Generator().manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.max_lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    per_epoch = split.steps(config.batch_size)
    total_steps = config.epochs * per_epoch if config.max_steps is None else min(config.max_steps,
                                                                                  config.epochs * per_epoch)
    schedule = _schedule(optimizer, config, max(total_steps, 1))
    shift = min(config.max_shift, data.max_shift)
    distill = config.distill if teacher is not None else 0.0
    amp, scaler = _mixed_precision(device)
    epochs = config.epochs if config.max_steps is None else -(-total_steps // max(per_epoch, 1))
    task = progress.add_task(description, total=epochs) if progress else None
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    model.train()
    step = 0
    for _ in range(epochs):
        for x, y in split.batches(config.batch_size, generator):
            if step == total_steps and config.max_steps is not None:
                break
            x = random_shift(x, shift, generator)          # augmented on the CPU, with the run's generator
            if data.flip:
                x = random_flip(x, generator)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                out = model(x.contiguous(memory_format=layout) if x.dim() == 4 else x)
                loss = data.train_loss(out, y)
                if distill:
                    with torch.no_grad():
                        soft = F.softmax(teacher(x) / config.temperature, dim=1)
                    kl = F.kl_div(F.log_softmax(out / config.temperature, dim=1), soft, reduction="batchmean")
                    loss = (1 - distill) * loss + distill * config.temperature ** 2 * kl
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            step += 1
            if schedule.last_epoch < total_steps - 1:   # a loader may yield one batch more than len()
                schedule.step()
        if progress:
            progress.advance(task)
    model.to(memory_format=torch.contiguous_format).to("cpu").eval()
    if teacher is not None:
        teacher.to("cpu")
    if progress:
        progress.remove_task(task)


def _mixed_precision(device: torch.device):
    """(autocast dtype or None, gradient scaler or None): bfloat16 on GPUs that have it, float16 with a scaler on
    the others, nothing on the CPU (float32 as always)."""
    if device.type != "cuda":
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def _schedule(optimizer, config: TrainConfig, total_steps: int):
    if config.schedule == "one-cycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, config.max_lr, total_steps=total_steps)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=total_steps)
    raise ValueError(f"unknown learning-rate schedule {config.schedule!r}: one-cycle, cosine or constant")


def accuracy(model: nn.Module, data: AnySplit, batch_size: int = 512) -> float:
    """Top-1 accuracy in [0, 1], in eval mode."""
    model.eval()
    with torch.no_grad():
        return top1(model, data, batch_size)
