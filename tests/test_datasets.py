"""Built-in data sets and image folders: finding the files, checking them, splitting them, and runs on them.

Fashion-MNIST comes from Debian's dataset-fashion-mnist package (.ci/run installs it); the
download path is exercised against a local stand-in for the release (no network here).
"""
import gzip
import hashlib
import io
import json
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hwsearch.commands import main as cli_main
from hwsearch.errors import DataError
from hwsearch.workloads import fashion_mnist as fm
from hwsearch.workloads import builtin, load_image_folder

DEBIAN = fm._debian_folder()


def needs_debian(test):
    """The files of Debian's dataset-fashion-mnist, which `make test` installs where apt exists: a missing
    package fails the test (it would hide the loader otherwise)."""
    def checked(*args, **kwargs):
        if not (DEBIAN / "train-images-idx3-ubyte.gz").is_file():
            pytest.fail("Debian's dataset-fashion-mnist is not installed: apt-get install dataset-fashion-mnist "
                        "(make test does it where apt exists)")
        return test(*args, **kwargs)
    checked.__name__, checked.__doc__ = test.__name__, test.__doc__
    checked.__wrapped__ = test
    return checked


@pytest.fixture
def no_sources(tmp_path, monkeypatch):
    """No --data-dir, no $HWSEARCH_DATA, no Debian package, an empty cache."""
    monkeypatch.delenv("HWSEARCH_DATA", raising=False)
    monkeypatch.setenv("HWSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fm, "_debian_folder", lambda: tmp_path / "no-debian")
    return tmp_path


@needs_debian
def test_the_files_are_found_in_data_dir_then_hwsearch_data_then_debian(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    shutil.copytree(DEBIAN, mine, ignore=shutil.ignore_patterns("*.md"))
    monkeypatch.delenv("HWSEARCH_DATA", raising=False)
    assert fm.find_files(mine) == mine
    assert fm.find_files(None) == DEBIAN
    monkeypatch.setenv("HWSEARCH_DATA", str(tmp_path))            # its fashion-mnist sub-folder counts too
    (tmp_path / "fashion-mnist").symlink_to(mine)
    assert fm.find_files(None) == tmp_path / "fashion-mnist"


@needs_debian
def test_a_folder_missing_a_file_or_holding_a_damaged_one_is_one_line(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in list(fm.FILES)[:2]:
        shutil.copy(DEBIAN / name, folder / name)
    with pytest.raises(DataError, match=r"holds 2 of the four Fashion-MNIST files; t10k-images-idx3-ubyte.gz is "
                                        r"missing: install Debian's dataset-fashion-mnist"):
        fm.find_files(folder)
    for name in list(fm.FILES)[2:]:
        shutil.copy(DEBIAN / name, folder / name)
    data = (folder / "t10k-images-idx3-ubyte.gz").read_bytes()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="is not a whole gzip file \\(truncated or damaged\\); delete it") as raised:
        fm.find_files(folder)
    assert "\n" not in str(raised.value)
    shutil.copy(DEBIAN / "t10k-labels-idx1-ubyte.gz", folder / "t10k-images-idx3-ubyte.gz")   # whole, but not it
    with pytest.raises(DataError, match="does not hold the Fashion-MNIST release's t10k-images-idx3-ubyte"):
        fm.find_files(folder)
    with pytest.raises(DataError, match="--data-dir .* is not a folder"):
        fm.find_files(tmp_path / "absent")


def test_offline_with_no_files_says_how_to_get_them(no_sources, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(fm.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="cannot be downloaded \\(no network\\): install Debian's dataset-fashion-mnist "
                                        "package .* or put the four files"):
        fm.find_files(None)
    assert not list((no_sources / "cache").rglob("*.gz"))


@needs_debian
def test_a_download_is_checked_against_the_published_md5_and_written_whole(no_sources, monkeypatch):
    """The release, played by Debian's files (their MD5s standing in for the published ones)."""
    served = []

    def release(url, timeout):
        served.append(url.rsplit("/", 1)[1])
        return io.BytesIO((DEBIAN / served[-1]).read_bytes())
    monkeypatch.setattr(fm.urllib.request, "urlopen", release)
    monkeypatch.setattr(fm, "FILES", {name: (hashlib.md5((DEBIAN / name).read_bytes()).hexdigest(), sha, shape)
                                      for name, (_, sha, shape) in fm.FILES.items()})
    folder = fm.find_files(None)
    assert folder == no_sources / "cache" / "data" / "fashion-mnist" and sorted(served) == sorted(fm.FILES)
    assert not list(folder.glob("*.tmp*")) and fm.find_files(None) == folder and len(served) == 4   # found, not fetched
    for name in fm.FILES:
        (folder / name).unlink()
    monkeypatch.setattr(fm.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"not the file"))
    with pytest.raises(DataError, match="does not match its published MD5"):
        fm.find_files(None)
    assert not list(folder.iterdir())


@needs_debian
def test_the_split_is_55000_5000_10000_stratified_seeded_and_recorded():
    data = fm.load_fashion_mnist(seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (55_000, 5_000, 10_000)
    labels = torch.cat([y for _, y in data.val.batches(1000)])
    assert torch.bincount(labels).tolist() == [500] * 10
    x = data.train.take(2000)
    assert x.shape == (2000, 1, 28, 28) and abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1
    assert data.source == {"dataset": "fashion-mnist", "folder": str(DEBIAN), "split": {"train": 55_000, "val": 5_000,
                           "test": 10_000}, "seed": 0, "mean": data.source["mean"], "std": data.source["std"]}
    other = fm.load_fashion_mnist(seed=1)
    assert not torch.equal(other.val.take(50), data.val.take(50)) and torch.equal(fm.load_fashion_mnist(seed=0)
                                                                                   .val.take(50), data.val.take(50))


def _png_folder(root: Path, classes=("bag", "coat", "shoe"), per_class=12, presplit=False) -> Path:
    """Small generated images: each class its own colour and stripe, sizes that are not the input's."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        for i in range(per_class):
            split = ("train", "train", "train", "val", "test")[i % 5] if presplit else None
            folder = root / split / name if presplit else root / name
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 60, (10, 12, 3), dtype=np.uint8)
            pixels[:, :, c] += 150
            pixels[2 * c:2 * c + 2] = 255
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_an_image_folder_is_split_by_seed_decoded_and_resized(tmp_path):
    data = load_image_folder(_png_folder(tmp_path / "flat"), (3, 8, 8), seed=0)
    assert data.source["classes"] == ["bag", "coat", "shoe"] and not data.source["presplit"]
    assert data.source["split"] == {"train": 30, "val": 3, "test": 3}
    x, y = next(iter(data.train.batches(64)))
    assert x.shape == (30, 3, 8, 8) and sorted(set(y.tolist())) == [0, 1, 2]
    assert abs(x.mean().item()) < 0.2                      # standardised with the training images' statistics
    gray = load_image_folder(tmp_path / "flat", (1, 6, 5))
    assert gray.test.take(2).shape == (2, 1, 6, 5)
    again = load_image_folder(tmp_path / "flat", (3, 8, 8), seed=0)
    assert torch.equal(again.val.take(3), data.val.take(3))
    presplit = load_image_folder(_png_folder(tmp_path / "split", presplit=True), (3, 8, 8))
    assert presplit.source["presplit"] and presplit.source["split"] == {"train": 24, "val": 6, "test": 6}


def test_bad_image_folders_are_one_line(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_image_folder(tmp_path / "absent", (3, 8, 8))
    _png_folder(tmp_path / "one", classes=("only",))
    with pytest.raises(DataError, match="has 1 class folder\\(s\\); give at least two"):
        load_image_folder(tmp_path / "one", (3, 8, 8))
    split = _png_folder(tmp_path / "split", presplit=True)
    shutil.rmtree(split / "val" / "coat")
    with pytest.raises(DataError, match="val/ has the classes \\['bag', 'shoe'\\] but train/ has"):
        load_image_folder(split, (3, 8, 8))
    with pytest.raises(DataError, match="is not an image shape"):
        load_image_folder(tmp_path / "one", (2, 8, 8))
    flat = _png_folder(tmp_path / "flat")
    (flat / "coat" / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match="notes.png cannot be read"):
        load_image_folder(flat, (3, 8, 8))
    (flat / "coat" / "notes.png").unlink()
    whole = (flat / "bag" / "0.png").read_bytes()
    (flat / "bag" / "0.png").write_bytes(whole[: len(whole) - 40])         # the header reads, the pixels do not
    with pytest.raises(DataError, match="0.png cannot be decoded") as raised:   # when its statistics or a batch read it
        data = load_image_folder(flat, (3, 8, 8))
        for split in (data.train, data.val, data.test):
            list(split.batches(64))
    assert "\n" not in str(raised.value)


NETS = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 3))
    return model.eval()
'''


def test_a_users_model_runs_on_an_image_folder_from_the_command_line(tmp_path, monkeypatch, capsys):
    folder = _png_folder(tmp_path / "images", per_class=20)
    (tmp_path / "nets.py").write_text(NETS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HWSEARCH_CACHE", str(tmp_path / "cache"))
    code = cli_main(["--model", "nets.py:build", "--data", f"imagefolder:{folder}", "--input", "3x8x8", "--budget",
                     "3KB", "--trials", "10", "--top-k", "1", "--finetune-epochs", "2", "--calibration", "16",
                     "--run-id", "images", "--quiet", "--max-accuracy-drop", "100"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "results" / "images" / "summary.json").read_text())
    assert summary["data"]["dataset"] == "imagefolder" and summary["data"]["classes"] == ["bag", "coat", "shoe"]
    assert summary["final"]["size_bytes"] <= 3_000 and summary["config"]["data"] == f"imagefolder:{folder.resolve()}"


@needs_debian
def test_a_small_fashion_mnist_run_with_a_built_in_model(tmp_path, monkeypatch, capsys):
    """LeNet-300-100 on Fashion-MNIST, its recipe cut to one epoch here (the cache key follows the recipe)."""
    monkeypatch.setitem(builtin.RECIPES, "lenet300_100_fashion",
                        builtin.RECIPES["lenet300_100_fashion"].__class__(epochs=1, batch_size=128, max_lr=0.05))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HWSEARCH_CACHE", str(tmp_path / "cache"))
    code = cli_main(["--model", "lenet300_100_fashion", "--data", "fashion-mnist", "--budget", "40KB", "--trials", "20",
                     "--top-k", "1", "--finetune-epochs", "1", "--calibration", "64", "--run-id", "fashion", "--quiet"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "results" / "fashion" / "summary.json").read_text())
    assert summary["data"]["dataset"] == "fashion-mnist" and summary["data"]["split"]["test"] == 10_000
    assert summary["final"]["size_bytes"] <= 40_000 and summary["baseline"]["test_accuracy"] > 0.8
    assert summary["final"]["test_accuracy"] > summary["baseline"]["test_accuracy"] - 0.02
    assert list((tmp_path / "cache").glob("lenet300_100_fashion-fashion-mnist-*.pt"))


def test_a_built_in_model_on_another_data_set_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HWSEARCH_CACHE", str(tmp_path))
    assert cli_main(["--model", "lenet5_digits", "--data", "fashion-mnist", "--budget", "20KB"]) == 2
    assert capsys.readouterr().err.strip() == (
        "hwsearch: error: --model lenet5_digits is trained on digits, not on --data fashion-mnist: give a model made "
        "for it (lenet300_100_fashion, lenet5_fashion, mobilenet_fashion, resnet_fashion) or your own")


@needs_debian
def test_a_model_object_on_fashion_mnist_through_the_api(tmp_path):
    import hwsearch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    result = hwsearch.search(model, "fashion-mnist", budget="20KB", trials=5, top_k=1, finetune_epochs=0,
                             calibration=32, cache_dir=tmp_path, progress=False, max_accuracy_drop=100)
    assert result.summary["data"]["dataset"] == "fashion-mnist" and result.summary["data"]["split"]["test"] == 10_000
    assert result.summary["final"]["size_bytes"] <= 20_000 and set(result.plan) == {"1", "3"}
