import math

import pytest
import torch
from torch import nn

from cost_models.measure import Measurement, measure_call, measure_onnxruntime, measure_torch
from hwsearch.export import export_onnx


@pytest.fixture
def small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)).eval()


def assert_sane(m: Measurement, runtime: str, repeats: int):
    assert m.runtime == runtime
    assert all(math.isfinite(v) and v > 0 for v in (m.p10_s, m.median_s, m.p90_s))
    assert m.p10_s <= m.median_s <= m.p90_s
    assert m.repeats >= repeats


def test_torch_measurement_is_sane_and_restores_threads(small, example):
    before = torch.get_num_threads()
    m = measure_torch(small, example, threads=1, min_time_s=0.02)
    assert_sane(m, "torch", 5)
    assert torch.get_num_threads() == before


def test_onnxruntime_measurement_is_sane(small, example, tmp_path):
    path = export_onnx(small, example, tmp_path / "small.onnx")
    assert_sane(measure_onnxruntime(path, example, min_time_s=0.02), "onnxruntime", 5)
    assert_sane(measure_onnxruntime(path.read_bytes(), example.numpy(), repeats=7, min_time_s=0), "onnxruntime", 7)


def test_repeats_grow_to_fill_the_time_asked_for():
    quick = measure_call(lambda: None, runtime="python", repeats=5, min_time_s=0)
    longer = measure_call(lambda: None, runtime="python", repeats=5, min_time_s=0.01)
    assert quick.repeats == 5 and longer.repeats > 5


def test_a_measurement_failure_is_raised_and_leaves_threads_alone(example):
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        measure_torch(nn.Linear(3, 3), example, threads=1, min_time_s=0)   # wrong input shape
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": 0}, "threads must be >= 1"),
    ({"repeats": 0}, "repeats >= 1"),
    ({"min_time_s": -1.0}, "min_time_s must be >= 0"),
])
def test_bad_settings_are_refused(small, example, kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure_torch(small, example, **kwargs)
