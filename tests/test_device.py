"""--device and --finetune-steps: the plumbing, checked on the CPU (this machine has no GPU)."""
import json

import pytest
import torch

from hwsearch.commands import main as cli_main
from hwsearch.config import resolve_device
from hwsearch.errors import HwsearchError
from hwsearch.workloads import Data, Split, TrainConfig, on_device, train


def test_auto_is_the_cpu_here_and_a_gpu_that_is_not_there_is_one_line(monkeypatch):
    assert resolve_device("auto") == resolve_device("cpu") == "cpu"
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(HwsearchError, match=f"--device {spec}: this machine has no GPU torch can use \\(a CPU build "
                                                "of torch, torch .*\\); use --device cpu, or auto"):
            resolve_device(spec)


def test_a_gpu_index_is_checked_against_the_gpus_torch_sees(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda:0" and resolve_device("cuda") == "cuda:0"
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(HwsearchError, match="torch sees 2 GPU\\(s\\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_the_command_line_refuses_a_missing_gpu_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["--budget", "20KB", "--model", "lenet5_digits", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwsearch: error: --device cuda: this machine has no GPU") and err.count("\n") == 1
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())
    assert cli_main(["--budget", "20KB", "--device", "gpu"]) == 2
    assert "--device 'gpu' is not a device: auto, cpu, cuda or cuda:N" in capsys.readouterr().err


def test_on_device_leaves_a_model_where_it_was():
    model = torch.nn.Linear(3, 2)
    with on_device(model, "cpu") as inside:
        assert inside is model and model.weight.device.type == "cpu"
    assert model.weight.device.type == "cpu"


def test_finetune_steps_bounds_the_optimizer_steps(monkeypatch):
    steps = []
    real = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: (steps.append(1), real(self, *a, **k))[1])
    x, y = torch.randn(640, 4), torch.randint(0, 3, (640,))
    data = Data(Split(x, y), Split(x, y), Split(x, y))
    model = torch.nn.Linear(4, 3)
    train(model, data, TrainConfig(epochs=3, batch_size=64, max_shift=0, max_steps=25))
    assert len(steps) == 25
    steps.clear()
    train(model, data, TrainConfig(epochs=2, batch_size=64, max_shift=0))
    assert len(steps) == 20                                   # unbounded: every batch of every epoch


def test_device_cpu_and_finetune_steps_run_end_to_end(model_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HWSEARCH_CACHE", str(model_cache))
    args = ["--model", "lenet5_digits", "--budget", "20KB", "--trials", "20", "--top-k", "1", "--quiet"]
    assert cli_main([*args, "--run-id", "auto"]) == 0
    assert cli_main([*args, "--run-id", "cpu", "--device", "cpu"]) == 0
    assert (tmp_path / "results" / "auto" / "model.hws").read_bytes() == \
        (tmp_path / "results" / "cpu" / "model.hws").read_bytes()          # auto is the CPU here: the same file
    assert cli_main([*args, "--run-id", "bounded", "--finetune-steps", "3"]) == 0
    summary = json.loads((tmp_path / "results" / "bounded" / "summary.json").read_text())
    assert summary["config"]["finetune_steps"] == 3 and summary["config"]["device"] == "auto"
