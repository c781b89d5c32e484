"""The command line: one module per command, on one parser; a shell over the Python API.

    hwsearch --target cortex-a76 --budget 10MB               search, retrain, export, report (search)

    hwsearch --resume RUN                                    continue an interrupted run
    hwsearch worker --storage URL --study NAME               evaluate trials of a run's shared study
    hwsearch inspect results/RUN/model.hws                   what a compressed file holds

For sweeps and pipelines:

    hwsearch codesign --target eyeriss-like --sweep glb_kb=64,128,256 --sweep pe=12x14,16x16 --budget 2MB
    hwsearch nightly nightly.yaml                            a matrix of searches, idempotent
    hwsearch compare OLD NEW                                 regressions between two runs or nightlies (exit 1)

Other commands, on the cost side:

    hwsearch targets                                         the built-in targets, one line each
    hwsearch cost --model resnet50 --input 3x224x224 --target cortex-a76 [--json]
    hwsearch validate --target host                          predicted against measured or published
    hwsearch calibrate host                                  measure this machine into targets/host.yaml

Bad input ends with one line on stderr (what is wrong and how to fix it) and exit 2; a bug
in hwsearch with one line and exit 1. `--debug`, anywhere on the line, adds the traceback.
Ctrl-C or SIGTERM, at any moment from start-up on, ends with one line and 130 or 143.
"""
from hwsearch.commands.main import COMMANDS, EXIT_BUG, EXIT_USAGE, Interrupted, main

__all__ = ["COMMANDS", "EXIT_BUG", "EXIT_USAGE", "Interrupted", "main"]
