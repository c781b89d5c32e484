"""The heavy stages as tasks on a Dask cluster: the proxy table's rows per layer, the candidates' fine-tuning.

`--workers N` starts a local cluster of N worker processes on this machine for the run;
`--cluster tcp://HOST:PORT` joins a running Dask scheduler (`dask scheduler` and `dask worker
tcp://HOST:PORT` on the machines, each with hwsearch installed). Without either, every task
runs in this process as before.

Why Dask and not Ray: the tasks are plain functions of a layer and its captured inputs (or of
a model and a plan) returning numbers or a model, with no state to keep between them, which
is what `Client.submit` does; `distributed` is a pure-Python wheel (1 MB) that starts a local
cluster of processes in about a second on this machine, and joins a remote scheduler by its
address, where Ray brings a 60 MB wheel and its own object store and daemons for actors we
do not need. Results come back to the run, which writes them where a single-process run
does (the proxy cache, the run folder and its study), so nothing downstream knows.

Arguments travel by value with cloudpickle, with the user's own model files (`--model
file.py:fn`, imported under a private name the workers cannot import) and the modules beside
them pickled by value too, so a worker needs hwsearch installed and nothing of the user's.
A task sets torch's thread count to its share of the local machine's cores, so the result
of a task is the same bytes as the same call in this process with that many threads.
"""
from __future__ import annotations

import os
import pickle
import sys
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from hwsearch.errors import HwsearchError

__all__ = ["Pool", "open_pool", "ordered"]

USER_MODULES = "hwsearch_user_"       # the prefix under which `--model file.py:fn` modules are imported


def _run(fn: Callable, threads: int | None, blob: bytes) -> bytes:
    """On a worker: `fn(*args, **kwargs)` with torch on `threads` threads; the result pickled as it came."""
    import cloudpickle
    import torch
    if threads:
        torch.set_num_threads(threads)
    args, kwargs = pickle.loads(blob)
    return cloudpickle.dumps(fn(*args, **kwargs), protocol=pickle.HIGHEST_PROTOCOL)


class Pool:
    """Tasks on a Dask cluster. `submit` returns a future whose `result()` is the function's value;
    `ordered` runs many calls with a bounded number in flight and yields their values in order."""

    def __init__(self, client, workers: int, threads: int | None, address: str | None):
        self.client, self.workers, self.threads, self.address = client, workers, threads, address

    def submit(self, fn: Callable, *args, **kwargs) -> "_Result":
        import cloudpickle
        for module in _user_modules():
            cloudpickle.register_pickle_by_value(module)
        blob = self.client.scatter(cloudpickle.dumps((args, kwargs), protocol=pickle.HIGHEST_PROTOCOL), hash=False)
        return _Result(self.client.submit(_run, fn, self.threads, blob, pure=False))

    def ordered(self, calls: Iterable[tuple[Callable, tuple]], window: int | None = None) -> Iterator[Any]:
        """The value of each `(fn, args)` in `calls`, in order; at most `window` (default twice the workers)
        submitted and not yet yielded, so that a generator of calls (captured inputs) is consumed as the
        cluster keeps up, not all at once."""
        window = window or 2 * self.workers
        pending: deque[_Result] = deque()
        for fn, args in calls:
            pending.append(self.submit(fn, *args))
            while len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def describe(self) -> str:
        where = f"the Dask cluster at {self.address}" if self.address else "a local Dask cluster"
        return f"{where} of {self.workers} worker process(es)" + (f", {self.threads} thread(s) each" if self.threads else "")


def _user_modules() -> list:
    """The user's `--model file.py:fn` modules and the modules beside them they import: sent by value, as a
    worker (on this machine or another) cannot import them by name."""
    modules = list(sys.modules.items())
    folders = {Path(m.__file__).parent for name, m in modules if name.startswith(USER_MODULES) and getattr(m, "__file__", None)}
    return [m for name, m in modules if name.startswith(USER_MODULES)
            or (getattr(m, "__file__", None) and Path(m.__file__).parent in folders)]


class _Result:
    def __init__(self, future):
        self.future = future

    def result(self):
        return pickle.loads(self.future.result())


def ordered(calls: Iterable[tuple[Callable, tuple]], pool: Pool | None) -> Iterator[Any]:
    """Each call's value in order: on `pool`, or here, one at a time, when there is none."""
    if pool is not None:
        yield from pool.ordered(calls)
        return
    for fn, args in calls:
        yield fn(*args)


@contextmanager
def open_pool(workers: int = 0, address: str | None = None) -> Iterator[Pool | None]:
    """A `Pool` for the run (None when neither `workers` nor `address` is given: everything in process).

    `workers` processes of a local cluster, each with an equal share of this machine's cores; or the
    scheduler at `address`, whose workers use the threads they were started with. Closed at the end.
    """
    if not workers and not address:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise HwsearchError("--workers and --cluster need Dask's distributed package: pip install distributed") from None
    import logging
    # its INFO lines would bury the run's, and a worker outliving the scheduler by a heartbeat at shutdown logs an
    # ERROR with a traceback for nothing; a task's own failure still reaches the run as its exception
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    if address:
        try:
            client = Client(address, timeout=5)
        except (OSError, TimeoutError) as exc:
            raise HwsearchError(f"--cluster {address}: no Dask scheduler answered within 5 s ({type(exc).__name__}); "
                                "start one (dask scheduler) and its workers (dask worker ADDRESS), or use --workers N "
                                "for a local cluster") from None
        try:
            count = len(client.scheduler_info(n_workers=-1)["workers"]) if _takes_n_workers(client) else \
                len(client.scheduler_info()["workers"])
            yield Pool(client, max(1, count), None, address)
        finally:
            client.close()
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.CRITICAL)
    client = Client(cluster)
    try:
        yield Pool(client, workers, threads, None)
    finally:
        client.close()
        cluster.close()


def _takes_n_workers(client) -> bool:
    import inspect
    return "n_workers" in inspect.signature(client.scheduler_info).parameters
