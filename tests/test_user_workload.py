"""A user's own model and data from files outside the package: a full run, and one line per mistake."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from hwsearch.export import artifact
from hwsearch.errors import DataError, ModelError
from hwsearch.runs import retrain
from hwsearch.compression import Option
from hwsearch.workloads import TrainConfig, load_user_workload

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "user_model"


def hwsearch(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "hwsearch", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The README's example, copied outside the repository (it trains its model there on first use)."""
    folder = tmp_path_factory.mktemp("user") / "project"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("*.pt", "__pycache__"))
    return folder


@pytest.fixture(scope="module")
def example_run(example):
    proc = hwsearch("--model", "project/nets.py:build", "--data", "project/data.py:load", "--eval",
                    "project/data.py:evaluate", "--input", "1x8x8", "--target", "cortex-a76", "--budget", "60KB",
                    "--trials", "40", "--top-k", "2", "--finetune-epochs", "1", "--run-id", "mine", "--quiet",
                    cwd=example.parent)
    return proc, example.parent / "results" / "mine"


def test_a_user_model_and_data_from_files_run_end_to_end(example_run):
    proc, folder = example_run
    assert proc.returncode == 0, proc.stderr
    assert "evaluate, test" in proc.stdout                   # the user's metric is named, not called accuracy
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["metric"] == "evaluate"
    assert summary["final"]["size_bytes"] == (folder / "model.hws").stat().st_size <= 60_000
    assert summary["baseline"]["size_bytes"] > 800_000      # 227k fp32 parameters
    assert 0.9 < summary["baseline"]["test_accuracy"] <= 1   # macro F1 of the trained example
    assert summary["final"]["test_accuracy"] > 0.5


def test_the_exported_file_records_how_to_rebuild_the_users_model(example_run, example, tmp_path, monkeypatch):
    _, folder = example_run
    monkeypatch.chdir(tmp_path)                              # load from anywhere: the builder path is absolute
    model, meta = artifact.load(folder / "model.hws", trust_code=True)     # the builder is the user's own
    assert meta["model"] == {"builder": f"{example / 'nets.py'}:build"}
    work = load_user_workload(f"{example}/nets.py:build", f"{example}/data.py:load",
                              eval_spec=f"{example}/data.py:evaluate")
    summary = json.loads((folder / "summary.json").read_text())
    assert work.data.evaluate(model, work.data.test) == pytest.approx(summary["final"]["test_accuracy"])


def test_a_user_model_from_files_runs_on_a_local_cluster(example, tmp_path):
    """The proxy rows and the fine-tuning as tasks on two worker processes, which cannot import the user's files
    (they get them by value): both candidates fine-tuned there, and a file within budget that scores what the
    run says."""
    proc = hwsearch("--model", "project/nets.py:build", "--data", "project/data.py:load", "--eval",
                    "project/data.py:evaluate", "--input", "1x8x8", "--target", "cortex-a76", "--budget", "60KB",
                    "--trials", "40", "--top-k", "2", "--finetune-epochs", "1", "--run-id", "spread", "--workers", "2",
                    "--cache-dir", str(tmp_path / "cache"), cwd=example.parent)
    assert proc.returncode == 0, proc.stderr
    log = proc.stdout + proc.stderr
    assert "heavy stages on a local Dask cluster of 2 worker process(es)" in log
    assert "Traceback" not in proc.stderr and "distributed" not in proc.stderr      # the cluster says nothing
    assert "proxy table: computed on the cluster" in log and len(list((tmp_path / "cache").glob("proxy-*.npz"))) == 1
    folder = example.parent / "results" / "spread"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["final"]["size_bytes"] == (folder / "model.hws").stat().st_size <= 60_000
    assert len(summary["retrained"]) == 2 and all(0 < c["val_after"] <= 1 for c in summary["retrained"])
    assert summary["final"]["test_accuracy"] > 0.5
    model, _ = artifact.load(folder / "model.hws", trust_code=True)
    work = load_user_workload(f"{example}/nets.py:build", f"{example}/data.py:load",
                              eval_spec=f"{example}/data.py:evaluate")
    assert work.data.evaluate(model, work.data.test) == pytest.approx(summary["final"]["test_accuracy"])


def write(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(textwrap.dedent(text))
    return str(folder / name)


MODEL = """
    import torch
    from torch import nn

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
"""
DATA = """
    import torch
    CALLS = []

    def load():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(90, 3, 4, generator=g)
        y = (x[:, 0, 0] > 0).long() + (x[:, 1, 1] > 0).long()
        return (x[:60], y[:60]), (x[60:75], y[60:75]), (x[75:], y[75:])

    def only_two():
        return load()[:2]

    def bad_labels():
        (x, y), val, test = load()
        return (x, y[:10]), val, test

    def numbers():
        return 1, 2, 3

    def raises():
        raise FileNotFoundError("/data/set.npz")

    def half_loss(outputs, labels):
        CALLS.append(len(labels))
        return torch.nn.functional.cross_entropy(outputs, labels) / 2

    def not_a_number(model, split):
        return "good"
"""


@pytest.fixture
def files(tmp_path):
    return write(tmp_path, "net.py", MODEL), write(tmp_path, "mydata.py", DATA)


def test_tensor_pairs_work_and_the_users_loss_fine_tunes(files):
    model_file, data_file = files
    work = load_user_workload(f"{model_file}:build", f"{data_file}:load", input_shape=(3, 4),
                              loss_spec=f"{data_file}:half_loss")
    assert work.example.shape == (1, 3, 4) and work.data.max_shift == 0
    assert work.test_accuracy == work.data.evaluate(work.model, work.data.test)
    calls = work.data.loss.__globals__["CALLS"]
    result = retrain(work.model, {"1": Option(bits=8), "3": Option()}, work.data, TrainConfig(epochs=2, max_lr=0.05))
    assert calls == [60, 60]                                  # one full batch per epoch, through the user's loss
    assert 0 <= result.test_accuracy <= 1


@pytest.mark.parametrize("data, extra, error, words", [
    ("only_two", {}, DataError, "returned a tuple of 2; return (train, val, test)"),
    ("numbers", {}, DataError, "the train split is an object of type int; give an (inputs, labels) pair"),
    ("bad_labels", {}, DataError, "the train split has 60 inputs and 10 labels"),
    ("raises", {}, DataError, "raised FileNotFoundError: /data/set.npz"),
    ("missing", {}, DataError, "has no function 'missing'"),
    ("load", {"input_shape": (1, 8, 8)}, DataError, "inputs of shape 3x4 per example but --input says 1x8x8"),
    ("load", {"eval_spec": "EVAL:not_a_number"}, DataError, "the metric not_a_number returned 'good'; return one number"),
])
def test_mistakes_in_the_users_data_are_named(files, data, extra, error, words):
    model_file, data_file = files
    extra = {k: v.replace("EVAL", data_file) if isinstance(v, str) else v for k, v in extra.items()}
    with pytest.raises(error) as caught:
        load_user_workload(f"{model_file}:build", f"{data_file}:{data}", **extra)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_model_that_does_not_fit_the_data_is_named(tmp_path, files):
    _, data_file = files
    wrong = write(tmp_path, "wrong.py", MODEL.replace("nn.Linear(12, 16)", "nn.Linear(64, 16)"))
    with pytest.raises(ModelError, match=r"wrong.py:build does not run on the training inputs of shape \(3, 4\)"):
        load_user_workload(f"{wrong}:build", f"{data_file}:load")


@pytest.mark.parametrize("args, words", [
    (["--model", "net.py:build"], "needs --data"),
    (["--data", "mydata.py:load"], "--data mydata.py:load goes with your own --model"),
    (["--input", "3x4"], "--input, --eval and --loss go with your own --model and --data"),
    (["--model", "net.py:build", "--data", "mydata.py:load", "--input", "3by4"], "--input '3by4' is not a shape"),
    (["--model", "net.py:build", "--data", "nowhere.py:load"], "nowhere.py does not exist"),
    (["--model", "broken.py:build", "--data", "mydata.py:load"], "importing broken.py failed (SyntaxError"),
    (["--model", "net.py:build", "--data", "mydata.py:only_two"], "returned a tuple of 2"),
])
def test_the_cli_answers_a_users_mistake_in_one_line(files, tmp_path, args, words):
    write(tmp_path, "broken.py", "def build(:\n")
    proc = hwsearch(*args, "--budget", "1KB", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
