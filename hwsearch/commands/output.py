"""How commands show their work: progress bars and log lines on stderr, numbers at a readable scale."""
from __future__ import annotations


def with_progress(work, *, quiet: bool):
    """work(progress) with progress bars on stderr (only where they redraw). Errors and signals are
    answered by `main`, in one line."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)   # failed trials are reported by hwsearch
    console = Console(stderr=True, quiet=quiet)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, disable=quiet or not console.is_terminal)
    with progress:
        return work(progress)


def si(value: float, unit: str) -> str:
    """3.2 ms, 41.0 us, 1.600 mJ: three significant figures at a readable scale."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0), ("m", 1e-3),
                          ("u", 1e-6), ("n", 1e-9)):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.3g} {unit}"
