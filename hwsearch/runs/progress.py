"""How a run talks while it works: log lines printed above the progress bars, and stage timings."""
from __future__ import annotations

import time
from typing import Callable


def say_to(progress) -> Callable[[str], None]:
    """A function printing one log line on `progress`'s console (nothing without a Progress)."""
    def say(message: str) -> None:
        if progress:
            progress.console.print(message, soft_wrap=True, markup=False, highlight=False)
    return say


class Laps:
    """Seconds per named stage, each lap from the end of the last one (or from `restart`)."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self.clock = time.perf_counter()

    def __call__(self, name: str) -> None:
        self.timings[name] = round(time.perf_counter() - self.clock, 2)
        self.clock = time.perf_counter()

    def restart(self) -> None:
        self.clock = time.perf_counter()
