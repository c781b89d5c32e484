"""`hwsearch worker --storage URL --study NAME`: evaluate trials of a run's shared study."""
from __future__ import annotations

from hwsearch.commands.parser import Parser
from hwsearch.errors import UsageError


def main(argv: list[str]) -> int:
    p = Parser(
        prog="hwsearch worker",
        description="Evaluate trials of a run's study in a database storage, beside the run that created it and "
                    "any other workers, until its queue is empty; that run retrains and exports. The tables are "
                    "rebuilt here from the study's recorded settings and this machine's caches.")
    p.add_argument("--storage", required=True, help="the run's --storage: sqlite:///path.db or postgresql://user@host/db")
    p.add_argument("--study", required=True, help="the study's name: the run's --run-id")
    p.add_argument("--cache-dir", default=None, help="trained-model cache (default $HWSEARCH_CACHE or ~/.cache/hwsearch)")
    p.add_argument("--wait", type=float, default=600.0,
                   help="seconds to wait for the run to create the study and issue its trials (default 600)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.wait < 0:
        raise UsageError(f"--wait must be at least 0 seconds, got {args.wait:g}")
    from rich.console import Console
    from rich.progress import Progress

    import optuna

    from hwsearch.runs.worker import work

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    console = Console(stderr=True, quiet=args.quiet)
    with Progress(console=console, transient=True, disable=args.quiet or not console.is_terminal) as progress:
        done = work(storage_url=args.storage, study_name=args.study, cache_dir=args.cache_dir, wait_s=args.wait,
                    progress=progress)
    print(f"hwsearch worker {done['worker']}: evaluated {done['ran']} trials of study {args.study} "
          f"({done['complete']} of {done['trials']} complete, {done['failed']} failed); proxy table "
          f"{done['proxy_table']}")
    return 0
