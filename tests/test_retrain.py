import torch

from hwsearch.compression import Option, kept_count
from hwsearch.runs import retrain
from hwsearch.workloads import TrainConfig, accuracy, load_workload

PLAN = {"conv1": Option(bits=8), "conv2": Option(bits=4), "fc1": Option(sparsity=0.9, bits=4),
        "fc2": Option(rank=8, bits=4), "fc3": Option(bits=4)}


def test_fine_tuning_keeps_masks_and_bits_and_never_loses_validation_accuracy(model_cache):
    work = load_workload("lenet5_digits", cache_dir=model_cache)
    result = retrain(work.model, PLAN, work.data, TrainConfig(epochs=3, max_lr=0.02))
    fc1 = result.model.get_submodule("fc1")
    assert int((fc1.effective_weight() != 0).sum()) <= kept_count(120 * 64, 0.9)
    for row in result.model.get_submodule("conv2").effective_weight().flatten(1):
        assert len(torch.unique(row)) <= 15
    assert result.val_accuracy == accuracy(result.model, work.data.val) >= result.val_before
    assert result.test_accuracy == accuracy(result.model, work.data.test) > 0.85
    assert work.model.get_submodule("fc1").__class__.__name__ == "Linear"   # original left untouched


def test_harmful_fine_tuning_is_discarded(model_cache):
    work = load_workload("lenet5_digits", cache_dir=model_cache)
    result = retrain(work.model, PLAN, work.data, TrainConfig(epochs=1, max_lr=50.0))   # diverges
    assert result.val_after < result.val_before and not result.fine_tuned
    assert result.val_accuracy == result.val_before
    assert result.test_accuracy == result.accuracy_before
