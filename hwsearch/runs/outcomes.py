"""What each stage of a run hands to the next: the study's trials, the retrained candidates, the exported file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hwsearch.runs.retraining import Retrained
from hwsearch.study import Candidate, StudyResult


@dataclass
class Searched:
    """The study's trials, and what the run takes from them."""
    result: StudyResult               # every trial, the exact optimum, the search space, the study
    front: list[Candidate]            # feasible plans no other beats on proxy and `second` (or size)
    top: list[Candidate]              # the candidates to retrain
    best_proxy: float                 # the best feasible score any trial reached
    second: str | None                # the cost a multi-objective study trades the score against


@dataclass
class Confirmed:
    """The retrained candidates and the one chosen on validation."""
    runs: list[tuple[Candidate, Retrained]]
    divergence: dict[int, float]      # per trial: the whole compressed model's measured output divergence
    chosen: Candidate
    best: Retrained


@dataclass
class Exported:
    """model.hws as written and read back, and model.onnx beside it."""
    path: Path
    size: int
    reload_max_abs_diff: float
    test_accuracy: float              # of the reloaded file: the figure the run reports
    onnx: dict
