"""A folder of images, one sub-folder per class: the form most users' own images come in.

    --data imagefolder:PATH --input 3x64x64

Either PATH/train, PATH/val and PATH/test each hold one folder per class, or PATH holds the class
folders and the images are split 80/10/10 per class by a seeded permutation. Every image is
decoded with Pillow, converted to the channels `--input` asks for (1: grayscale, 3: RGB), resized
to its height and width, and standardised per channel with the mean and deviation of (up to 512
of) the training images. Images are decoded as batches are served, by DataLoader worker processes
where the machine has cores to spare: nothing holds the data set in memory.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from hwsearch.errors import DataError
from hwsearch.workloads.data import Data, DatasetSplit

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
SPLITS = ("train", "val", "test")
FRACTIONS = (0.8, 0.1, 0.1)           # when the folder is not split already
STATISTICS_SAMPLE = 512


def _classes(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def scan(root: Path, seed: int = 0) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """The class names and, per split, its (image, class index) pairs."""
    if not root.is_dir():
        raise DataError(f"--data imagefolder:{root}: no such folder; give a folder with one sub-folder of images per "
                        "class (or train/, val/ and test/ folders holding them)")
    if all((root / s).is_dir() for s in SPLITS):
        classes = _classes(root / "train")
        for split in SPLITS[1:]:
            if _classes(root / split) != classes:
                raise DataError(f"--data imagefolder:{root}: {split}/ has the classes {_classes(root / split)} but "
                                f"train/ has {classes}; give every split the same class folders")
        pairs = {split: [(p, i) for i, c in enumerate(classes) for p in _images(root / split / c)] for split in SPLITS}
    else:
        classes = _classes(root)
        rng = np.random.default_rng(seed)
        pairs = {split: [] for split in SPLITS}
        for i, c in enumerate(classes):
            files = _images(root / c)
            order = rng.permutation(len(files))
            n_val = n_test = max(1, round(FRACTIONS[1] * len(files))) if len(files) >= 3 else 0
            cut = (len(files) - n_val - n_test, len(files) - n_test)
            for split, (start, stop) in zip(SPLITS, ((0, cut[0]), cut, (cut[1], len(files)))):
                pairs[split] += [(files[j], i) for j in order[start:stop]]
    if len(classes) < 2:
        raise DataError(f"--data imagefolder:{root} has {len(classes)} class folder(s); give at least two, one per class "
                        "(e.g. cats/ and dogs/)")
    for split, items in pairs.items():
        held = {label for _, label in items}
        if len(held) < len(classes):
            missing = [c for i, c in enumerate(classes) if i not in held][0]
            raise DataError(f"--data imagefolder:{root}: the {split} split has no image of class {missing!r}; give "
                            f"every class at least 3 images (jpg, png, ...)")
    return classes, pairs


class Images(Dataset):
    """(image file, class index) pairs decoded on demand into standardised (C, H, W) tensors."""

    def __init__(self, items: list[tuple[Path, int]], shape: tuple[int, int, int], mean=None, std=None):
        self.items, self.shape = items, shape
        self.mean = torch.zeros(shape[0]) if mean is None else mean
        self.std = torch.ones(shape[0]) if std is None else std

    def __len__(self) -> int:
        return len(self.items)

    def decode(self, path: Path) -> torch.Tensor:
        channels, height, width = self.shape
        try:
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
                array = np.asarray(image, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"image {path} cannot be decoded ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                            "replace or remove it") from None
        x = torch.from_numpy(array).reshape(height, width, -1).permute(2, 0, 1)      # (C, H, W)
        return x

    def __getitem__(self, i):
        path, label = self.items[i]
        x = self.decode(path)
        return (x - self.mean[:, None, None]) / self.std[:, None, None], label


def load_image_folder(root: str | Path, input_shape: tuple[int, ...], *, seed: int = 0) -> Data:
    """The three splits of an image folder, decoded to `input_shape` (C, H, W), C being 1 or 3."""
    root = Path(root)
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise DataError(f"--input {'x'.join(map(str, input_shape))} is not an image shape for --data imagefolder: "
                        "give channels x height x width with 1 (grayscale) or 3 (RGB) channels, e.g. 3x64x64")
    classes, pairs = scan(root, seed)
    for split, items in pairs.items():          # a non-image file with an image's name is refused now, not mid-run
        for path, _ in items:
            try:
                with Image.open(path):
                    pass
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"image {path} cannot be read ({type(exc).__name__}); replace or remove it") from None
    sample = [pairs["train"][i] for i in
              np.random.default_rng(seed).permutation(len(pairs["train"]))[:STATISTICS_SAMPLE]]
    raw = torch.stack([Images(sample, input_shape).decode(path) for path, _ in sample])   # (n, C, H, W)
    mean, std = raw.mean(dim=(0, 2, 3)), raw.std(dim=(0, 2, 3)).clamp_min(1e-6)
    workers = min(2, (os.cpu_count() or 1) - 1)   # decoding in other processes where a core is free
    splits = [DatasetSplit(Images(pairs[s], input_shape, mean, std), s, workers=workers if len(pairs[s]) > 256 else 0)
              for s in SPLITS]
    return Data(*splits, metric_name="top-1 accuracy", source={
        "dataset": "imagefolder", "folder": str(root.resolve()), "classes": classes,
        "split": {s: len(pairs[s]) for s in SPLITS}, "seed": seed,
        "presplit": all((root / s).is_dir() for s in SPLITS)})
