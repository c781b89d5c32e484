import pytest
import torch

from hwsearch.data import load_digits_split
from hwsearch.errors import ModelError
from hwsearch.training import random_shift
from hwsearch.workload import load_workload


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


def test_corrupt_cache_is_a_clear_error(model_cache, tmp_path):
    load_workload("lenet5_digits", cache_dir=model_cache)
    for path in model_cache.glob("lenet5_digits-*.pt"):
        (tmp_path / path.name).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="delete it"):
        load_workload("lenet5_digits", cache_dir=tmp_path)


def test_unknown_model_lists_the_choices(tmp_path):
    with pytest.raises(ModelError, match="choose one of lenet5_digits, resnet18_digits"):
        load_workload("vgg99", cache_dir=tmp_path)


def test_random_shift_moves_content_by_at_most_one_pixel():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 4, 4] = 1.0
    shifted = random_shift(x, 1, torch.Generator().manual_seed(0))
    rows, cols = torch.nonzero(shifted[:, 0] == 1.0)[:, 1], torch.nonzero(shifted[:, 0] == 1.0)[:, 2]
    assert ((rows - 4).abs() <= 1).all() and ((cols - 4).abs() <= 1).all()
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 1
