"""One run, stage by stage, in its own folder.

    summary, folder = run(RunConfig(target="cortex-a76", budget="10MB"))

`pipeline` is a run's life (a new folder, or an interrupted one resumed); `prepare` the
stages that do not depend on the hardware (model, layer graph, options, proxy table),
done once for many runs by co-design sweeps and nightly matrices; `tables` the costs on
one target; `stages` the search, retraining and export; `retrain` confirms candidates by
fine-tuning; `summary` and `results` write what a person and a tool read; `folder` is the
run folder (partial until finished, locked while in use); `worker` joins another run's
study on a shared database.
"""
from hwsearch.runs.folder import RunFolder, interrupted_runs
from hwsearch.runs.pipeline import config_from_record, default_run_id, model_label, resume, run, study_exists
from hwsearch.runs.prepared import Prepared, prepare, prepare_key, prepare_or_reuse
from hwsearch.runs.progress import say_to
from hwsearch.runs.retraining import Retrained, retrain
from hwsearch.runs.stages import run_stages
from hwsearch.runs.summary import binding_budget
from hwsearch.runs.tables import Tables, build_tables, hardware_tables, search_config

__all__ = ["Prepared", "Retrained", "RunFolder", "Tables", "binding_budget", "build_tables",
           "config_from_record", "default_run_id", "hardware_tables", "interrupted_runs", "model_label", "prepare",
           "prepare_key", "prepare_or_reuse", "resume", "retrain", "run", "run_stages", "say_to", "search_config",
           "study_exists"]
