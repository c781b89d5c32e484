"""User data for the bad-input table: digits as (inputs, labels) tensors, and ways data can be wrong."""
import torch
from sklearn.datasets import load_digits


def load():
    images, labels = load_digits(return_X_y=True)
    x = torch.from_numpy(images[:300]).float().reshape(-1, 1, 8, 8) / 16.0
    y = torch.from_numpy(labels[:300])
    return (x[:200], y[:200]), (x[200:250], y[200:250]), (x[250:], y[250:])


def wrong_type():
    return 7


def two_splits():
    train, val, _ = load()
    return train, val


def unequal():
    (x, y), val, test = load()
    return (x, y[:10]), val, test
