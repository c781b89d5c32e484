"""How the study spends its trials: repair against Optuna's constrained samplers, without warm start.

    python benchmarks/search_strategies.py      # writes results/benchmarks/search_strategies.{json,md}

On the default tables (resnet18_digits on cortex-a76) at 2 MB, 1 MB, 600 KB and 450 KB, each strategy
runs 300 trials with no warm start (so that the sampler alone is measured) and seeds 0-2: the share of
trials inside the budget, the best feasible proxy against the exact optimum, the trial at which it came
within 1% of the optimum, trials per second with the default storage (a journal file), and where the
time goes (cProfile of one run).
"""
from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import optuna

from tables import OUT, tables  # noqa: E402
from hwsearch.budget import Budgets  # noqa: E402
from hwsearch.study import SearchConfig, exact_optimum, run_study, search_space  # noqa: E402

BUDGETS = (2_000_000, 1_000_000, 600_000, 450_000)
STRATEGIES = (("hull", "tpe"), ("repair", "tpe"), ("constrained", "tpe"), ("hull", "random"), ("repair", "random"),
              ("constrained", "random"))
SEEDS = (0, 1, 2)


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    t = tables()
    proxy, costs = t.proxy, t.costs
    rows = []
    for budget in BUDGETS:
        budgets = Budgets(size_bytes=budget)
        space = search_space(proxy, costs, SearchConfig(budgets))
        optimum = exact_optimum(proxy.scores, costs, budgets, space)
        for strategy, sampler in STRATEGIES:
            for seed in SEEDS:
                config = SearchConfig(budgets, strategy=strategy, sampler=sampler, trials=300, seed=seed,
                                      warm_start=False)
                with tempfile.TemporaryDirectory() as tmp:
                    start, cpu = time.perf_counter(), time.process_time()
                    result = run_study(proxy=proxy, costs=costs, config=config, storage_path=Path(tmp) / "s.journal",
                                       study_name="s")
                    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                best, within = float("inf"), None
                for cand in sorted(result.candidates, key=lambda c: c.trial):
                    if cand.feasible:
                        best = min(best, cand.proxy)
                        if within is None and best <= optimum.score * 1.01:
                            within = cand.trial + 1
                feasible = sum(c.feasible for c in result.candidates) / len(result.candidates)
                rows.append({"budget_bytes": budget, "strategy": strategy, "sampler": sampler, "seed": seed,
                             "feasible_share": feasible, "best_proxy": best, "exact_proxy": optimum.score,
                             "gap": best / optimum.score - 1, "trials_to_1pct": within,
                             "trials_per_s": len(result.candidates) / wall, "wall_s": wall,
                             "trials_per_cpu_s": len(result.candidates) / cpu})
                print(f"{budget:>9,} B {strategy:11s} {sampler:6s} seed {seed}: feasible {feasible:4.0%}, best "
                      f"{best:.4f} vs exact {optimum.score:.4f} ({rows[-1]['gap']:+.1%}), within 1% at trial "
                      f"{within}, {rows[-1]['trials_per_s']:.0f} trials/s")
    profile = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        profile.enable()
        run_study(proxy=proxy, costs=costs, config=SearchConfig(Budgets(size_bytes=1_000_000), trials=300),
                  storage_path=Path(tmp) / "s.journal", study_name="p")
        profile.disable()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
    summary = []
    for strategy, sampler in STRATEGIES:
        for budget in BUDGETS:
            chosen = [r for r in rows if r["strategy"] == strategy and r["sampler"] == sampler and r["budget_bytes"] == budget]
            reached = [r["trials_to_1pct"] for r in chosen if r["trials_to_1pct"] is not None]
            summary.append({"strategy": strategy, "sampler": sampler, "budget_bytes": budget,
                            "feasible_share": sum(r["feasible_share"] for r in chosen) / len(chosen),
                            "mean_gap": sum(r["gap"] for r in chosen) / len(chosen),
                            "runs_within_1pct": f"{len(reached)}/{len(chosen)}",
                            "median_trials_to_1pct": sorted(reached)[len(reached) // 2] if reached else None,
                            "trials_per_s": sum(r["trials_per_s"] for r in chosen) / len(chosen),
                            "trials_per_cpu_s": sum(r["trials_per_cpu_s"] for r in chosen) / len(chosen)})
    lines = ["# Search strategies without warm start (300 trials, seeds 0-2)", "",
             "| strategy | sampler | budget | trials in budget | mean gap to exact | runs within 1% | median trials to 1% "
             "| trials/s (wall) | trials per CPU-second |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in summary:
        lines.append(f"| {r['strategy']} | {r['sampler']} | {r['budget_bytes']:,} B | {r['feasible_share']:.0%} | "
                     f"{r['mean_gap']:+.1%} | {r['runs_within_1pct']} | {r['median_trials_to_1pct'] or '-'} | "
                     f"{r['trials_per_s']:.0f} | {r['trials_per_cpu_s']:.0f} |")
    lines += ["", f"Load average while it ran: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall-clock rates "
              "fall with other work on the machine; rates per CPU-second much less).", "",
              "Profile of one default run (hull, TPE, 1 MB, with warm start):", "", "```",
              *text.getvalue().strip().splitlines()[:40], "```"]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "search_strategies.json").write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(
        timespec="seconds"), "rows": rows, "summary": summary}, indent=1) + "\n")
    (OUT / "search_strategies.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
