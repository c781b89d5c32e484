"""Example user data for `hwsearch --data examples/user_model/data.py:load`.

Real images (scikit-learn's 1797 handwritten digits), served the way a user's project
usually serves them: DataLoaders over a Dataset. `evaluate` shows a metric other than
top-1 accuracy (macro-averaged F1, as scikit-learn computes it).
"""
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset


def splits(seed: int = 1):
    """Tensors for train, val and test: 60/20/20, standardised with the train statistics."""
    images, labels = load_digits(return_X_y=True)
    images = images.astype(np.float32).reshape(-1, 1, 8, 8) / 16.0
    x_rest, x_test, y_rest, y_test = train_test_split(images, labels, test_size=0.2, random_state=seed, stratify=labels)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.25, random_state=seed, stratify=y_rest)
    mean, std = x_train.mean(), x_train.std()
    return [(torch.from_numpy((x - mean) / std), torch.from_numpy(y)) for x, y in
            ((x_train, y_train), (x_val, y_val), (x_test, y_test))]


def load():
    """(train, val, test) as DataLoaders yielding (images, labels); only train is shuffled."""
    train, val, test = (TensorDataset(x, y) for x, y in splits())
    return (DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)),
            DataLoader(val, batch_size=256), DataLoader(test, batch_size=256))


@torch.no_grad()
def evaluate(model, loader) -> float:
    """Macro-averaged F1 over the split: higher is better, in [0, 1]."""
    predicted, truth = [], []
    for x, y in loader:
        predicted.append(model(x).argmax(1))
        truth.append(y)
    return f1_score(torch.cat(truth).numpy(), torch.cat(predicted).numpy(), average="macro")
