"""Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 70,000 28x28 grayscale images of clothing in 10
classes, as the four standard IDX gzip files. Where hwsearch's accuracy claims are measured.

The files are looked for, in order, in `--data-dir` (or `$HWSEARCH_DATA`, or a `fashion-mnist`
folder inside either), then where Debian's `dataset-fashion-mnist` package installs them
(`dpkg -L dataset-fashion-mnist`), then in the cache (`~/.cache/hwsearch/data/fashion-mnist`). If
none holds them and the machine is online, they are downloaded from the official release into
the cache, checked against the published MD5 sums and written atomically; otherwise one line says
how to get them. A file is accepted when its gzip matches the published MD5, or when its
content matches the SHA-256 of the release's content (Debian recompresses the same images, so
its .gz files differ from the release's only in the gzip header), and its IDX header says the
right shape.

The 60,000 training images are split 55,000 / 5,000 (train / validation) by a seeded, stratified
permutation; the 10,000 test images are the official test set. The images stay uint8 in memory
(55 MB) and are scaled per batch as the DataLoader serves them.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hwsearch.atomic_write import atomic_write
from hwsearch.errors import DataError
from hwsearch.workloads.cache import default_cache_dir
from hwsearch.workloads.data import Data, DatasetSplit

NAME = "fashion-mnist"
RELEASE = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
# file: (MD5 of the .gz as the release publishes it, SHA-256 of its content, the IDX shape)
FILES = {
    "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                   "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", (60000, 28, 28)),
    "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe",
                                   "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", (60000,)),
    "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79",
                                  "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", (10000, 28, 28)),
    "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310",
                                  "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", (10000,)),
}
SPLIT = (55_000, 5_000, 10_000)          # train, validation (both from the official training set), test
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
HOW_TO_GET = ("install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist), or put the "
              f"four files ({', '.join(FILES)}) from {RELEASE} in a folder and pass --data-dir FOLDER (or set "
              "$HWSEARCH_DATA)")


def candidate_folders(data_dir: str | Path | None = None) -> list[tuple[Path, str]]:
    """Where the files may be, in the order they are looked for, each with how it was named."""
    out = []
    for base, named in ((data_dir, "--data-dir"), (os.environ.get("HWSEARCH_DATA"), "$HWSEARCH_DATA")):
        if base:
            out += [(Path(base), named), (Path(base) / NAME, named)]
    out.append((_debian_folder(), "Debian's dataset-fashion-mnist"))
    out.append((default_cache_dir() / "data" / NAME, "the cache"))
    return out


def _debian_folder() -> Path:
    """Where `dpkg -L dataset-fashion-mnist` says the files are (its usual place if dpkg cannot say)."""
    try:
        listed = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return DEBIAN
    for line in listed.stdout.splitlines():
        if line.endswith("/train-images-idx3-ubyte.gz"):
            return Path(line).parent
    return DEBIAN


def find_files(data_dir: str | Path | None = None, *, download: bool = True, progress=None) -> Path:
    """The folder holding the four files, checked; downloaded into the cache when none has them."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"--data-dir {data_dir} is not a folder; give the folder holding {', '.join(FILES)}")
    for folder, named in candidate_folders(data_dir):
        present = [name for name in FILES if (folder / name).is_file()]
        if len(present) == len(FILES):
            for name in FILES:
                check_file(folder / name)
            return folder
        if present and named != "the cache":
            missing = [name for name in FILES if name not in present]
            raise DataError(f"{folder} ({named}) holds {len(present)} of the four Fashion-MNIST files; {missing[0]} "
                            f"is missing: {HOW_TO_GET}")
    if download:
        return _download(default_cache_dir() / "data" / NAME, progress)
    raise DataError(f"Fashion-MNIST not found: {HOW_TO_GET}")


def check_file(path: Path) -> None:
    """One file whole and the right one: its .gz MD5 or its content's SHA-256, and its IDX shape."""
    published_md5, content_sha256, shape = FILES[path.name]
    raw = path.read_bytes()
    if hashlib.md5(raw).hexdigest() == published_md5:
        return
    try:
        content = gzip.decompress(raw)
    except (OSError, EOFError, ValueError):
        raise DataError(f"{path} is not a whole gzip file (truncated or damaged); delete it and fetch it again: "
                        f"{HOW_TO_GET}") from None
    if hashlib.sha256(content).hexdigest() != content_sha256:
        raise DataError(f"{path} does not hold the Fashion-MNIST release's {path.name.removesuffix('.gz')} (checksum "
                        f"mismatch); delete it and fetch it again: {HOW_TO_GET}")
    _idx_array(content, shape, path)


def _idx_array(content: bytes, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """The array an IDX file holds: magic (0, 0, 0x08 = uint8, dimensions), sizes (big-endian u32), data."""
    dims = len(shape)
    header = 4 + 4 * dims
    if len(content) < header or content[:4] != bytes((0, 0, 8, dims)):
        raise DataError(f"{path} is not an IDX file of uint8 with {dims} dimensions; fetch it again: {HOW_TO_GET}")
    sizes = tuple(int.from_bytes(content[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    if sizes != shape or len(content) != header + int(np.prod(shape)):
        raise DataError(f"{path} holds an array of shape {sizes}, not {shape}; fetch it again: {HOW_TO_GET}")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)


def read(path: Path) -> np.ndarray:
    """The checked file's array (writable: torch takes it without a copy)."""
    check_file(path)
    return _idx_array(gzip.decompress(path.read_bytes()), FILES[path.name][2], path).copy()


def _download(folder: Path, progress=None) -> Path:
    """The four files from the official release, each checked against its published MD5, written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    task = progress.add_task("downloading Fashion-MNIST", total=len(FILES)) if progress else None
    for name, (md5, _, _) in FILES.items():
        if not (folder / name).is_file():
            try:
                with urllib.request.urlopen(RELEASE + name, timeout=30) as response:
                    data = response.read()
            except (urllib.error.URLError, OSError) as exc:
                raise DataError(f"Fashion-MNIST not found, and it cannot be downloaded ({getattr(exc, 'reason', exc)}): "
                                f"{HOW_TO_GET}") from None
            if hashlib.md5(data).hexdigest() != md5:
                raise DataError(f"the download of {RELEASE + name} does not match its published MD5 {md5}; try again "
                                f"later, or {HOW_TO_GET}")
            with atomic_write(folder / name, "wb") as f:
                f.write(data)
        if progress:
            progress.advance(task)
    if progress:
        progress.remove_task(task)
    return folder


class Images(Dataset):
    """uint8 images (N, 28, 28) and labels, served as standardised float tensors (1, 28, 28)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: float, std: float):
        self.images, self.labels = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return (self.images[i].float().div(255).sub(self.mean).div(self.std)).unsqueeze(0), self.labels[i]

    def __getitems__(self, indices):            # a whole batch at once, then collated as usual
        x = self.images[indices].float().div(255).sub(self.mean).div(self.std).unsqueeze(1)
        return list(zip(x, self.labels[indices]))


def load_fashion_mnist(*, data_dir: str | Path | None = None, seed: int = 0, progress=None) -> Data:
    """The 55,000 / 5,000 / 10,000 split, standardised with the training images' mean and deviation."""
    folder = find_files(data_dir, progress=progress)
    train_x, train_y = read(folder / "train-images-idx3-ubyte.gz"), read(folder / "train-labels-idx1-ubyte.gz")
    test_x, test_y = read(folder / "t10k-images-idx3-ubyte.gz"), read(folder / "t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(seed)
    # stratified: the same share of each class in validation (500 of each of the 10 classes)
    val = np.sort(np.concatenate([rng.permutation(np.flatnonzero(train_y == c))[:SPLIT[1] // 10] for c in range(10)]))
    train = np.setdiff1d(np.arange(len(train_y)), val)
    mean = float(train_x[train].mean() / 255)
    std = float(train_x[train].std() / 255)
    splits = [DatasetSplit(Images(x, y, mean, std), name) for x, y, name in
              ((train_x[train], train_y[train], "train"), (train_x[val], train_y[val], "val"),
               (test_x, test_y, "test"))]
    return Data(*splits, max_shift=2, flip=True, metric_name="top-1 accuracy", source={
        "dataset": NAME, "folder": str(folder), "split": dict(zip(("train", "val", "test"), SPLIT)), "seed": seed,
        "mean": mean, "std": std})
