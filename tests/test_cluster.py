"""The heavy stages on a local Dask cluster of several processes give what one process gives."""
import numpy as np
import pytest
import torch
from distributed import get_task_stream

from hwsearch.cluster import open_pool
from hwsearch.errors import HwsearchError
from hwsearch.proxy import build_proxy_table
from tests.test_proxy_streaming import small_net


@pytest.fixture(scope="module")
def pool():
    with open_pool(workers=2) as pool:
        yield pool


@pytest.fixture(scope="module")
def setup():
    return small_net()


@pytest.mark.parametrize("streaming", [False, True], ids=["exact", "streamed"])
def test_the_table_from_two_worker_processes_is_the_single_process_table(setup, pool, streaming):
    model, layers, options, calibration = setup
    before = torch.get_num_threads()
    torch.set_num_threads(pool.threads)     # as many threads as each worker: sums add up in the same order
    try:
        alone = build_proxy_table(model, layers, options, calibration, streaming=streaming)
        with get_task_stream(client=pool.client) as stream:
            spread = build_proxy_table(model, layers, options, calibration, streaming=streaming, pool=pool)
    finally:
        torch.set_num_threads(before)
    assert list(spread.errors) == list(alone.errors)
    for name in alone.errors:
        np.testing.assert_array_equal(spread.errors[name], alone.errors[name], err_msg=name)
        np.testing.assert_array_equal(spread.sizes[name], alone.sizes[name])
    assert spread.sensitivity == alone.sensitivity
    rows = [task for task in stream.data if task["key"].startswith("_run-")]
    assert len(rows) == len(layers)                             # one task per layer ...
    assert len({task["worker"] for task in rows}) == 2          # ... spread over both worker processes


def test_tasks_run_in_other_processes(pool):
    import os
    assert os.getpid() not in {pool.submit(os.getpid).result() for _ in range(4)}


def test_no_scheduler_at_the_address_is_one_line():
    with pytest.raises(HwsearchError, match="no Dask scheduler answered"):
        with open_pool(address="tcp://127.0.0.1:9"):
            pass


def test_a_worker_joining_a_run_fetches_its_proxy_table_instead_of_recomputing_it(model_cache, tmp_path, monkeypatch):
    """The run hands its table to its study (a database); a worker with no table in its cache reads it from there."""
    import shutil

    from hwsearch.config import RunConfig
    from hwsearch.proxy import table
    from hwsearch.runs.pipeline import run
    from hwsearch.runs.worker import work
    from hwsearch.workloads import load_workload

    load_workload("lenet5_digits", cache_dir=model_cache)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    summary, _ = run(RunConfig(model="lenet5_digits", budget="20KB", trials=20, top_k=1, finetune_epochs=0,
                               storage=url, run_id="shared", results_dir=str(tmp_path / "results"),
                               cache_dir=str(model_cache)))
    elsewhere = tmp_path / "other-machine-cache"       # the trained model, no proxy table
    shutil.copytree(model_cache, elsewhere, ignore=shutil.ignore_patterns("proxy-*.npz"))
    assert not list(elsewhere.glob("proxy-*.npz"))

    def recompute(*args, **kwargs):
        raise AssertionError("the worker recomputed the proxy table")

    monkeypatch.setattr(table, "build_proxy_table", recompute)
    done = work(storage_url=url, study_name="shared", cache_dir=str(elsewhere), wait_s=5)
    assert done["proxy_table"] == "fetched from the run's study"
    [fetched] = elsewhere.glob("proxy-*.npz")
    assert fetched.read_bytes() == (model_cache / fetched.name).read_bytes()
    assert done["complete"] == summary["search"]["trials"] == 20
    import optuna
    retrained = optuna.load_study(study_name="shared", storage=url).user_attrs["retrained"]
    assert [r["trial"] for r in retrained] == [c["trial"] for c in summary["retrained"]]    # in the run's storage


def test_a_run_joins_a_running_cluster_by_its_address(setup, tmp_path):
    """A scheduler and two worker processes started as on real machines (`dask scheduler`, `dask worker ADDRESS`):
    `--cluster ADDRESS` computes the same table there."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    model, layers, options, calibration = setup
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).with_name("dask"))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}           # the workers import hwsearch (and this test's model)
    logs = (tmp_path / "scheduler.log").open("w"), (tmp_path / "workers.log").open("w")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=logs[0], stderr=subprocess.STDOUT, env=env)]
    try:
        procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", "2", "--nthreads", "1",
                                       "--no-dashboard"], stdout=logs[1], stderr=subprocess.STDOUT, env=env,
                                      cwd=os.getcwd()))
        from distributed import Client
        deadline = time.monotonic() + 120
        while True:                                             # until both workers have joined
            try:
                with Client(address, timeout=5) as client:
                    if len(client.scheduler_info()["workers"]) == 2:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "workers.log").read_text()[-2000:]
            time.sleep(0.5)
        before = torch.get_num_threads()
        torch.set_num_threads(1)                               # as each worker: dask worker sets one thread
        try:
            alone = build_proxy_table(model, layers, options, calibration, streaming=True)
            with open_pool(address=address) as pool:
                assert pool.workers == 2 and pool.address == address
                spread = build_proxy_table(model, layers, options, calibration, streaming=True, pool=pool)
        finally:
            torch.set_num_threads(before)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)
        for log in logs:
            log.close()
    for name in alone.errors:
        np.testing.assert_array_equal(spread.errors[name], alone.errors[name], err_msg=name)
        np.testing.assert_array_equal(spread.sizes[name], alone.sizes[name])
