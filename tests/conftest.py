"""Tiny models for each graph pattern, and a shared trained LeNet-5 cache for slower tests."""
from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyResidual(nn.Module):
    """stem conv -> [grouped conv, depthwise conv] + skip -> linear: every pattern the graph handles."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.depthwise = nn.Conv2d(8, 8, 3, stride=1, padding=1, groups=8)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        y = self.depthwise(torch.relu(self.grouped(x)))
        return self.fc(torch.flatten(x + y, 1))


class DataDependent(nn.Module):
    """Control flow on tensor values: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x.flatten(1))
        return -self.fc(x.flatten(1))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return TinyResidual().eval()


@pytest.fixture
def example():
    return torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One cache folder per test session, so LeNet-5 is trained once."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def postgres_url():
    """postgresql://... of a real PostgreSQL server started for this test session (tests/postgres.py)."""
    from tests.postgres import Server

    server = Server()
    try:
        yield server.start()
    finally:
        server.stop()
