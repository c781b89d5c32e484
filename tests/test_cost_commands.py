"""The cost side as a user runs it: hwsearch targets, cost, validate, calibrate."""
import json
import os
import subprocess
import sys

import pytest
import torch

from cost_models import available_targets, load_target
from cost_models.validate import validate_host


def hwsearch(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "hwsearch", *args], cwd=cwd or os.getcwd(), env=env,
                          capture_output=True, text=True, timeout=600)


USER_MODEL = """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(4 * 16 * 16 + 8, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        tokens = x.flatten(2).transpose(1, 2)
        attended, _ = self.attention(tokens, tokens, tokens)
        return self.fc(torch.cat([self.up(x).flatten(1), attended.mean(1)], 1))


def build():
    return Net()


def broken():
    return "not a model"
"""


def test_targets_lists_every_builtin_target_one_line_each():
    proc = hwsearch("targets")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == available_targets()
    kinds = {line.split()[1] for line in lines}
    assert kinds == {"cpu", "gpu", "accelerator"}


def test_cost_json_of_a_reference_model_has_totals_and_every_layer():
    proc = hwsearch("cost", "--model", "mobilenet_v2", "--input", "3x224x224", "--target", "cortex-a76", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    total = report["total"]
    assert total["macs"] == sum(layer["macs"] for layer in report["layers"]) == 300_774_272
    assert total["latency_s"] == pytest.approx(sum(layer["latency_s"] for layer in report["layers"]))
    assert set(report["levels"]) == {"registers", "l1d", "l2", "l3", "dram"}
    assert total["dram_bytes"] > 0 and total["energy_j"] > 0
    assert {layer["bottleneck"] for layer in report["layers"]} <= {"compute", "overhead", *report["levels"]}


def test_cost_of_a_users_model_from_a_file(tmp_path):
    (tmp_path / "nets.py").write_text(USER_MODEL)
    proc = hwsearch("cost", "--model", f"{tmp_path}/nets.py:build", "--input", "3x8x8", "--target", "a100", "--json")
    assert proc.returncode == 0, proc.stderr
    kinds = {layer["kind"] for layer in json.loads(proc.stdout)["layers"]}
    assert {"conv", "conv_transpose", "linear", "matmul"} <= kinds
    table = hwsearch("cost", "--model", f"{tmp_path}/nets.py:build", "--input", "3x8x8", "--target", "eyeriss-like")
    assert table.returncode == 0 and "attention.scores" in table.stdout and "bound by" in table.stdout


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet50", "--input", "3x224"], "fails on an input of shape (1, 3, 224) at op 'conv1'"),
    (["--model", "resnet50", "--input", "3xbig"], "--input '3xbig' is not a shape"),
    (["--model", "resnet999", "--input", "3x8x8"], "unknown model 'resnet999'"),
    (["--model", "NETS:broken", "--input", "3x8x8"], "returned str, not a torch nn.Module"),
    (["--model", "NETS:missing", "--input", "3x8x8"], "has no function 'missing'"),
    (["--model", "no_such_pkg.nets:build", "--input", "3x8x8"], "cannot import 'no_such_pkg.nets'"),
    (["--model", "resnet18", "--input", "3x8x8", "--target", "tpu-lik"], "did you mean 'tpu-like'"),
    (["--model", "resnet18", "--input", "3x8x8", "--backend", "magic"], "--backend 'magic' is not a cost model"),
])
def test_cost_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    (tmp_path / "nets.py").write_text(USER_MODEL)
    args = [a.replace("NETS", f"{tmp_path}/nets.py") for a in args]
    proc = hwsearch("cost", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwsearch: error:") and message in lines[0], proc.stderr


def test_validate_a_published_target_reports_calibration_and_held_out_figures():
    proc = hwsearch("validate", "--target", "cortex-a76", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    roles = {row["role"] for row in report["rows"]}
    assert roles == {"calibration", "validation"}
    calibration = [row for row in report["rows"] if row["role"] == "calibration"]
    assert {row["model"] for row in calibration} == {"resnet50_v1", "mobilenet_v2_caffe", "vgg16"}
    for row in calibration:        # the YAML's fitted figures reproduce what they were fitted on
        assert abs(row["error"]) < 0.05


def test_calibrate_host_writes_a_target_that_loads_and_prices(tmp_path):
    path = tmp_path / "mine.yaml"
    proc = hwsearch("calibrate", "host", "--runtime", "torch", "--output", str(path))
    assert proc.returncode == 0, proc.stderr
    target = load_target(str(path))
    assert target.kind == "cpu" and target.runtime == "torch"
    assert [c.dtype for c in target.compute] == ["fp32"]            # torch eager has no int8 kernels
    assert 0 < target.cpu.gemm_efficiency <= 1 and target.dram.bandwidth_bytes_per_s > 1e8
    assert "measured: hwsearch calibrate host" in path.read_text()


def test_calibrate_refuses_an_output_that_is_not_yaml(tmp_path):
    proc = hwsearch("calibrate", "host", "--output", str(tmp_path / "host.txt"))
    assert proc.returncode == 2 and "must end in .yaml" in proc.stderr


def test_measured_validation_compares_variants_on_this_machine():
    report = validate_host(load_target("host"), variants=2, models=(("resnet18_digits", (1, 8, 8)),))
    assert len(report["rows"]) == 3
    for row in report["rows"]:
        assert row["measured_s"] > 0 and row["predicted_s"] > 0
    assert report["rows"][0]["low_rank_layers"] == report["rows"][0]["int8_layers"] == 0
    assert any(row["low_rank_layers"] > 0 for row in report["rows"])


def test_validating_a_target_without_a_runtime_here_says_what_to_use():
    with pytest.raises(Exception, match="hwsearch calibrate host"):
        validate_host(load_target("cortex-a76"), variants=1)
