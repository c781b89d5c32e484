"""Co-design: the search at every point of a grid of hardware variants, and the front across them.

    config = CodesignConfig(RunConfig(target="eyeriss-like", budget="2MB"), ("glb_kb=64,128,256",))
    summary, folder = run_codesign(config, points=plan_grid(config))

`sweep` parses `--sweep KEY=VALUES` and builds each point as a validated target; `run`
prepares the model and proxy table once, searches every point and retrains the points on
the front across hardware; `report` writes the sweep's table, plots and report.
"""
from hwsearch.codesign.run import RETRAIN, CodesignConfig, front_ids, plan_grid, run_codesign
from hwsearch.codesign.sweep import MAX_POINTS, Point, Sweep, SweepError, build_grid

__all__ = ["MAX_POINTS", "RETRAIN", "CodesignConfig", "Point", "Sweep", "SweepError", "build_grid", "front_ids",
           "plan_grid", "run_codesign"]
