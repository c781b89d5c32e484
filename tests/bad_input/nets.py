"""User models for the bad-input table: one that works, and one per way a model can be wrong."""
import torch
from torch import nn


class Small(nn.Module):
    """A small CNN for 1x8x8 digits (untrained: the table's errors come before any accuracy matters)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class Untraceable(Small):
    """Branches on a tensor's value: torch.fx cannot trace it."""

    def forward(self, x):
        if x.sum() > 0:
            return super().forward(x)
        return -super().forward(x)


def small():
    torch.manual_seed(0)
    return Small().eval()


def untraceable():
    torch.manual_seed(0)
    return Untraceable().eval()


def not_a_model():
    return {"weights": [1, 2, 3]}


def raises():
    raise ValueError("the checkpoint file is missing")
