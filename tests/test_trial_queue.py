"""The ticket queue's end: a process stops only when every ticket is settled.

A stale trial is failed and its retry enqueued by whichever process notices, in two writes.
A run that looks between them sees nothing waiting or running; it must still wait for the
retry (the three-worker PostgreSQL test once reported 79 of 80 trials that way).
"""
import threading
import time

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hwsearch.storage import open_storage, trial_queue


def _study(tmp_path, own_error: bool = False):
    tmp_path.mkdir(parents=True, exist_ok=True)
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat_s=1)
    study = optuna.create_study(storage=storage, study_name="s")
    trial_queue.issue(study, [], 2, skip_duplicates=False)
    study.tell(study.ask(), 1.0)                          # ticket 0: done
    failed = study.ask()                                  # ticket 1: failed, as stale (its process died) or by an error
    if own_error:
        failed.set_user_attr(trial_queue.ERROR, "ValueError: bad plan")
    study.tell(failed, state=TrialState.FAIL)
    return storage, study, failed.number


def test_a_failed_ticket_is_due_a_retry_unless_it_failed_by_its_own_error(tmp_path):
    assert trial_queue.retry_due(_study(tmp_path / "stale")[1])
    assert not trial_queue.retry_due(_study(tmp_path / "error", own_error=True)[1])


def test_an_objective_error_fails_and_marks_its_trial_so_that_no_process_waits_for_a_retry(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat_s=1)
    optuna.create_study(storage=storage, study_name="another").enqueue_trial({})   # trial ids then differ from numbers
    study = optuna.create_study(storage=storage, study_name="s")
    trial_queue.issue(study, [], 1, skip_duplicates=False)

    def broken(trial):
        raise ValueError("bad plan")

    try:
        trial_queue.run(study, storage, broken, poll_s=0.05)
    except ValueError:
        pass
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs[trial_queue.ERROR] == "ValueError: bad plan"
    assert not trial_queue.retry_due(study)


def test_the_run_waits_for_a_retry_another_process_is_still_enqueueing(tmp_path):
    storage, study, number = _study(tmp_path)
    evaluated = []

    def run():
        evaluated.append(trial_queue.run(study, storage, lambda trial: 2.0, poll_s=0.05))

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.3)                  # the run has found nothing waiting and nothing running by now
    assert thread.is_alive()
    RetryHeartbeatStaleTrialCallback(max_retry=trial_queue.MAX_RETRIES)(study, study.trials[number])
    thread.join(timeout=60)
    assert evaluated == [1]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.user_attrs[trial_queue.TICKET] for t in complete) == [0, 1]
