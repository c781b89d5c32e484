"""The default data: scikit-learn's digits (1797 real 8x8 scans, shipped in the package).

A fixed-seed stratified split gives train (fine-tuning, calibration), validation
(choosing among retrained candidates) and test (the accuracy we report).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Split:
    x: torch.Tensor   # (N, 1, 8, 8) float32, standardised
    y: torch.Tensor   # (N,) int64 class labels


@dataclass(frozen=True)
class Digits:
    train: Split
    val: Split
    test: Split


def load_digits_split(seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15) -> Digits:
    """Split digits 70/15/15 with a fixed seed, standardised with the train statistics."""
    images, labels = load_digits(return_X_y=True)
    images = images.astype(np.float32).reshape(-1, 1, 8, 8)
    x_rest, x_test, y_rest, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1 - test_fraction), random_state=seed, stratify=y_rest)
    mean, std = x_train.mean(), x_train.std()

    def split(x, y):
        return Split(torch.from_numpy((x - mean) / std), torch.from_numpy(y.astype(np.int64)))

    return Digits(split(x_train, y_train), split(x_val, y_val), split(x_test, y_test))
