"""The benchmarks' harness and the other tools' allocations: statistics that mean what they say, plans that fit."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from allocators import aimet_plan, hawq_plan, hutchinson_traces, plan_bytes  # noqa: E402
from harness import interval, mcnemar  # noqa: E402

from hwsearch.budget import Budgets  # noqa: E402


def test_the_interval_holds_the_mean_and_narrows_with_more_test_images():
    rng = np.random.default_rng(0)
    small = rng.random((2, 270)) < 0.9
    large = rng.random((2, 10_000)) < 0.9
    for correct in (small, large):
        mean, low, high = interval(correct)
        assert low < mean < high and mean == pytest.approx(correct.mean())
    assert interval(large)[2] - interval(large)[1] < 0.25 * (interval(small)[2] - interval(small)[1])
    assert 0.88 < interval(large)[1] and interval(large)[2] < 0.92


def test_mcnemar_tells_apart_what_differs_and_not_what_does_not():
    rng = np.random.default_rng(1)
    a = rng.random((2, 10_000)) < 0.9
    assert mcnemar(a, a) == 1.0
    b = a.copy()
    b[:, :300] = False                                     # 300 images per seed lost: a clear difference
    assert mcnemar(a, b) < 1e-6
    c = a.copy()                                           # 10 images lost and 10 gained: no difference
    right, wrong = np.flatnonzero(a.all(axis=0))[:10], np.flatnonzero(~a.any(axis=0))[:10]
    c[:, right], c[:, wrong] = False, True
    assert mcnemar(a, c) == 1.0 and mcnemar(a, b) < mcnemar(a, c)


@pytest.fixture(scope="module")
def lenet(model_cache):
    import os

    os.environ["HWSEARCH_CACHE"] = str(model_cache)
    from tables import tables
    return tables("lenet5_digits")


def test_the_hessian_trace_is_positive_for_every_layer(lenet):
    traces = hutchinson_traces(lenet.work.model, lenet.names, *next(iter(lenet.work.data.train.batches(256))),
                               probes=16)
    assert set(traces) == set(lenet.names) and all(v > 0 for v in traces.values())


@pytest.mark.parametrize("share", [0.5, 0.25])
def test_hawq_and_aimet_plans_fit_the_budget(lenet, share):
    fp32 = lenet.costs.totals(lenet.fp32_choice)["size_bytes"]
    budgets = Budgets(size_bytes=int(fp32 * share))
    hawq = hawq_plan(lenet, budgets)
    assert hawq is not None and plan_bytes(lenet, hawq) <= budgets.size_bytes
    assert all(o.rank is None and o.sparsity == 0 and o.bits in (32, 8, 6, 4, 3, 2) for o in hawq.values())
    if share < 0.5:                         # a tighter budget takes fewer bits somewhere
        assert any(o.bits < 8 for o in hawq.values())
    aimet = aimet_plan(lenet, budgets)
    assert aimet is not None and lenet.costs.totals(aimet)["size_bytes"] <= budgets.size_bytes
    assert hawq_plan(lenet, Budgets(size_bytes=100)) is None and aimet_plan(lenet, Budgets(size_bytes=100)) is None
