import pytest
import torch

from hwsearch.workloads import load_digits_split, load_workload
from hwsearch.errors import ModelError
from hwsearch.workloads.training import random_shift


def test_split_is_fixed_disjoint_and_stratified():
    a, b = load_digits_split(seed=0), load_digits_split(seed=0)
    assert torch.equal(a.test.x, b.test.x)
    assert (len(a.train.y), len(a.val.y), len(a.test.y)) == (1257, 270, 270)
    assert set(a.test.y.tolist()) == set(range(10))
    assert abs(a.train.x.mean().item()) < 1e-4


def test_trains_once_then_reuses_the_cache(model_cache):
    first = load_workload("lenet5_digits", cache_dir=model_cache)
    second = load_workload("lenet5_digits", cache_dir=model_cache)
    assert not second.trained_now
    assert first.test_accuracy == second.test_accuracy > 0.9
    for p, q in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bit flip", "empty"])
def test_a_damaged_cache_entry_is_named_retrained_and_replaced(model_cache, tmp_path, damage):
    reference = load_workload("lenet5_digits", cache_dir=model_cache)
    (source,) = model_cache.glob("lenet5_digits-*.pt")
    data = source.read_bytes()
    damaged = {"garbage": b"not a checkpoint", "truncated": data[: len(data) // 2], "empty": b"",
               # one bit in the middle of the weights: torch.load alone accepts this file
               "bit flip": data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0x10]) + data[len(data) // 2 + 1:]}
    (tmp_path / source.name).write_bytes(damaged[damage])
    warnings = []
    work = load_workload("lenet5_digits", cache_dir=tmp_path, warn=warnings.append)
    assert work.trained_now and len(warnings) == 1
    assert str(tmp_path / source.name) in warnings[0] and "retraining" in warnings[0]
    assert work.test_accuracy == reference.test_accuracy          # the same recipe gives the same weights
    again = load_workload("lenet5_digits", cache_dir=tmp_path, warn=warnings.append)
    assert not again.trained_now and len(warnings) == 1           # the entry was replaced by a good one


def test_the_reported_accuracy_is_measured_not_read_from_the_cache(model_cache, tmp_path):
    load_workload("lenet5_digits", cache_dir=model_cache)
    (source,) = model_cache.glob("lenet5_digits-*.pt")
    saved = torch.load(source, weights_only=True)
    saved["test_accuracy"] = 0.123                     # a stored figure that is not the weights' own
    torch.save(saved, tmp_path / source.name)
    work = load_workload("lenet5_digits", cache_dir=tmp_path)
    assert not work.trained_now and work.test_accuracy > 0.9


def test_unknown_model_lists_the_choices(tmp_path):
    with pytest.raises(ModelError, match="choose one of lenet300_100_digits, lenet300_100_fashion, lenet5_caffe_digits, "
                                         "lenet5_digits, lenet5_fashion, mobilenet_fashion, resnet18_digits, "
                                         "resnet_fashion, vgg_small_digits"):
        load_workload("vgg99", cache_dir=tmp_path)


def test_random_shift_moves_content_by_at_most_one_pixel():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 4, 4] = 1.0
    shifted = random_shift(x, 1, torch.Generator().manual_seed(0))
    rows, cols = torch.nonzero(shifted[:, 0] == 1.0)[:, 1], torch.nonzero(shifted[:, 0] == 1.0)[:, 2]
    assert ((rows - 4).abs() <= 1).all() and ((cols - 4).abs() <= 1).all()
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 1


def test_the_papers_networks_have_their_shapes_on_digits_resized_to_their_input():
    from hwsearch.workloads import load_digits_split
    from hwsearch.workloads.models import DIGITS_INPUT, build_model
    params = {name: sum(p.numel() for p in build_model(name).parameters()) for name in DIGITS_INPUT}
    assert params["lenet300_100_digits"] == 266_610            # 784-300-100-10: Deep Compression's 1070 KB
    assert params["lenet5_caffe_digits"] == 431_080            # Caffe's LeNet-5: its 1720 KB
    data = load_digits_split(size=28)
    assert data.train.x.shape[1:] == (1, 28, 28) and data.max_shift == 3
    assert build_model("lenet5_caffe_digits")(data.test.take(2)).shape == (2, 10)
    assert build_model("vgg_small_digits")(load_digits_split(size=16).test.take(2)).shape == (2, 10)
