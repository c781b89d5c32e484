"""Example user model for `hwsearch --model examples/user_model/nets.py:build`.

`build()` returns the trained model, as hwsearch expects. The first call trains it
(about 10 s on two cores) and saves the weights beside this file; later calls, including
`hwsearch.export.artifact.load` rebuilding the architecture of an exported file, read them.
"""
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from data import splits

WEIGHTS = Path(__file__).with_name("small_cnn.pt")


class SmallCNN(nn.Module):
    """Three 3x3 convolutions and two linear layers for 1x8x8 images: 227,018 parameters."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(128 * 2 * 2, 256), nn.ReLU(), nn.Linear(256, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def build() -> nn.Module:
    torch.manual_seed(0)
    model = SmallCNN()
    if WEIGHTS.is_file():
        model.load_state_dict(torch.load(WEIGHTS, weights_only=True))
        return model.eval()
    (x, y), _, _ = splits()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(20):
        for batch in torch.randperm(len(y), generator=generator).split(64):
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.save(model.state_dict(), WEIGHTS.with_suffix(".tmp"))
    WEIGHTS.with_suffix(".tmp").replace(WEIGHTS)       # never half a file, even if interrupted
    return model.eval()
