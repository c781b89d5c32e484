"""Latency measured on this machine, with torch or with onnxruntime, batch as given.

    m = measure_torch(plain_(model), x)             # Measurement(median_s=..., p10_s=..., ...)
    m = measure_onnxruntime("model.onnx", x)

Both run single-threaded by default (`threads=1`), warm up, then time one call at a time
until `min_time_s` has passed and at least `repeats` calls were timed; the median is the
figure to use, p10 and p90 show the spread. Pass torch a model in eval mode, and
`plain_(model)` for what a deployed runtime runs: a compressed model recomputes its
quantized weights on every call.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import torch
from torch import nn


@dataclass(frozen=True)
class Measurement:
    """Latency of one call (seconds) over `repeats` timed calls."""
    median_s: float
    p10_s: float
    p90_s: float
    repeats: int
    runtime: str            # "torch", "onnxruntime", or what a `measure_call` caller names


def measure_torch(model: nn.Module, example_input: torch.Tensor, *, threads: int = 1, warmup: int = 3,
                  repeats: int = 5, min_time_s: float = 0.3) -> Measurement:
    """Latency of `model(example_input)` under `torch.inference_mode` on `threads` threads.

    torch's intra-op thread count is set for the measurement and restored afterwards.
    """
    _check_threads(threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            return measure_call(lambda: model(example_input), runtime="torch", warmup=warmup, repeats=repeats,
                                min_time_s=min_time_s)
    finally:
        torch.set_num_threads(previous)


def measure_onnxruntime(onnx_model: str | Path | bytes, example_input: torch.Tensor | np.ndarray, *,
                        threads: int = 1, warmup: int = 3, repeats: int = 5,
                        min_time_s: float = 0.3) -> Measurement:
    """Latency of one `InferenceSession.run` of an ONNX file (or its bytes) on the CPU provider.

    The session is built by `session`: `threads` intra-op threads, sequential execution,
    every graph optimisation. The input is fed as is (a tensor is converted to numpy once).
    """
    _check_threads(threads)
    sess = session(onnx_model, threads=threads)
    data = example_input.detach().numpy() if isinstance(example_input, torch.Tensor) else example_input
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(data)}
    return measure_call(lambda: sess.run(None, feed), runtime="onnxruntime", warmup=warmup, repeats=repeats,
                        min_time_s=min_time_s)


def session(onnx_model: str | Path | bytes, *, threads: int = 1,
            optimized_model_filepath: str | Path | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session set up as every measurement here uses it.

    `optimized_model_filepath` saves the graph onnxruntime actually runs (after fusions),
    to check which kernels a model gets.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3           # errors only: saving an optimised graph warns that it is machine-specific
    if optimized_model_filepath is not None:
        options.optimized_model_filepath = str(optimized_model_filepath)
    model = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def measure_call(call: Callable[[], object], *, runtime: str, warmup: int = 3, repeats: int = 5,
                 min_time_s: float = 0.3) -> Measurement:
    """Latency of any zero-argument callable; `runtime` labels the result. The caller sets threads."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup must be >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    if not min_time_s >= 0:
        raise ValueError(f"min_time_s must be >= 0 seconds, got {min_time_s}")
    for _ in range(warmup):
        call()
    times = []
    # As timeit does: a collection in the middle of a timed call would be counted as its latency.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while len(times) < repeats or time.perf_counter() - start < min_time_s:
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    p10, median, p90 = np.quantile(times, [0.1, 0.5, 0.9])
    return Measurement(float(median), float(p10), float(p90), len(times), runtime)


def _check_threads(threads: int) -> None:
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
