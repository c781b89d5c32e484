"""scikit-learn's digits: 1,797 real 8x8 scans of handwritten digits, shipped inside the package.

The embedded default data set (no download, no file), the offline demo's and the fast
tests' workload. Its test split has 270 images: one image is 0.37 points of accuracy.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.nn import functional as F

from hwsearch.workloads.data import Data, Split


Digits = Data    # the name this module used when digits was the only data


def load_digits_split(seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15, size: int = 8) -> Data:
    """Split digits 70/15/15 with a fixed seed, standardised with the train statistics.

    `size`: side of the images, resized bilinearly from the 8x8 scans (a model built for
    28x28 input sees the digits at that size; the random shift scales with it).
    """
    images, labels = load_digits(return_X_y=True)
    images = images.astype(np.float32).reshape(-1, 1, 8, 8)
    x_rest, x_test, y_rest, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1 - test_fraction), random_state=seed, stratify=y_rest)
    mean, std = x_train.mean(), x_train.std()

    def split(x, y):
        images = torch.from_numpy((x - mean) / std)                                    # (N, 1, 8, 8)
        if size != 8:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        return Split(images.contiguous(), torch.from_numpy(y.astype(np.int64)))

    return Data(split(x_train, y_train), split(x_val, y_val), split(x_test, y_test), max_shift=max(1, size // 8),
                source={"dataset": "digits", "split": {"train": len(y_train), "val": len(y_val), "test": len(y_test)},
                        "seed": seed, "size": size})
