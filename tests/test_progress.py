"""The progress view: plain lines when piped, a redrawn status line on a terminal."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

from runner.progress import CLEAR_LINE, ProgressView


def trial(name: str, tid: str, result: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        trial_id=tid,
        config={"member": {"name": name, "model": "mlp"}},
        experiment_tag="0",
        last_result=result or {},
        error_file=None,
        get_error=lambda: RuntimeError("boom"),
    )


def drive(view: ProgressView) -> None:
    a, b, c = trial("a", "1"), trial("b", "2"), trial("c", "3")
    view.on_trial_start(0, [], a)
    view.on_trial_start(0, [], b)
    a.last_result = {"final": True, "final_val_accuracy": 0.9, "train_seconds": 2.0}
    view.on_trial_complete(0, [], a)
    view.on_trial_start(0, [], c)
    b.last_result = {"final": True, "final_val_accuracy": 0.95, "train_seconds": 3.0}
    view.on_trial_complete(0, [], b)
    view.on_trial_error(0, [], c)
    view.on_experiment_end([])


def test_piped_output_is_plain_lines_with_counts_and_best_score():
    out = io.StringIO()
    drive(ProgressView(3, "accuracy", stream=out))
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("[0/3 done, 1 running | best - |") and lines[0].endswith(
        "a (mlp) started"
    )
    assert lines[2].startswith("[1/3 done, 1 running | best 0.9000 a |")
    assert "b finished: val accuracy 0.9500" in lines[4] and "best 0.9500 b" in lines[4]
    assert lines[5].startswith("[3/3 done, 1 failed, 0 running | best 0.9500 b |")
    assert "c FAILED" in lines[5] and "0s left" in lines[5]


def test_regression_keeps_the_lowest_error_as_best():
    out = io.StringIO()
    view = ProgressView(2, "rmse", stream=out)
    for name, tid, score in (("a", "1", 0.5), ("b", "2", 0.7)):
        t = trial(name, tid, {"final": True, "final_val_rmse": score, "train_seconds": 1.0})
        view.on_trial_start(0, [], t)
        view.on_trial_complete(0, [], t)
    assert view.best == (0.5, "a")


def test_a_terminal_gets_a_status_line_redrawn_in_place():
    out = io.StringIO()
    view = ProgressView(3, "accuracy", stream=out, live=True)
    drive(view)
    text = out.getvalue()
    assert CLEAR_LINE in text
    assert "1 running, 1 pending | best val accuracy 0.9000 (a)" in text
    final = text.rsplit(CLEAR_LINE, 1)[1]
    assert final.startswith("3/3 done (1 failed) | 0 running, 0 pending | best val accuracy")
    assert final.endswith(", 0s left\n")


def test_verbose_zero_prints_nothing():
    out = io.StringIO()
    drive(ProgressView(3, "accuracy", stream=out, verbose=0))
    assert out.getvalue() == ""


def test_a_resumed_sweep_counts_the_trials_an_earlier_attempt_finished():
    out = io.StringIO()
    view = ProgressView(3, "accuracy", stream=out)
    earlier = trial("a", "1", {"final": True, "final_val_accuracy": 0.97, "train_seconds": 9.0})
    earlier.status = "TERMINATED"  # restored by Tune, not run again
    b, c = trial("b", "2"), trial("c", "3")
    b.status = c.status = "PENDING"
    for _ in range(2):  # counted once, before this attempt's first trial
        view.on_step_begin(0, [earlier, b, c])
    view.on_trial_start(0, [], b)
    b.last_result = {"final": True, "final_val_accuracy": 0.95, "train_seconds": 3.0}
    view.on_trial_complete(0, [], b)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/3 done, 1 earlier, 1 running | best 0.9700 a |")
    assert lines[1].startswith("[2/3 done, 1 earlier, 0 running | best 0.9700 a |")
    assert view.status().startswith("2/3 done (1 in an earlier attempt) | 0 running, 1 pending")


def test_one_view_goes_on_over_a_stages_tune_runs():
    """The plain members' run, then a searched member's: counts, best and clock go on (a view
    per run said '2/2 done' with samples still to come, then '0/3 done | best -')."""
    out = io.StringIO()
    view = ProgressView(5, "accuracy", stream=out)
    view.next_run()
    a, b = trial("a", "1"), trial("b", "2")
    for t, score in ((a, 0.94), (b, 0.93)):
        view.on_trial_start(0, [], t)
        t.last_result = {"final": True, "final_val_accuracy": score, "train_seconds": 1.0}
        view.on_trial_complete(0, [], t)
    view.on_experiment_end([a, b])
    view.next_run()
    earlier = trial("mlp-0", "3", {"final": True, "final_val_accuracy": 0.5})
    earlier.status = "TERMINATED"  # restored in the second run: counted there
    view.on_step_begin(0, [earlier])
    s = trial("mlp-1", "4")
    view.on_trial_start(0, [], s)
    s.last_result = {"final": True, "final_val_accuracy": 0.45, "train_seconds": 1.0}
    view.on_trial_complete(0, [], s)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("[4/5 done, 1 earlier, 0 running | best 0.9400 a |"), last


def test_members_the_time_limit_skipped_are_said_so_and_set_no_pace():
    """Skipped members counted as 'stopped early' and as done at their instant pace, so the
    view said '~6s left' for a member running minutes; time left stops at the deadline, and
    the clock counts from the command's start, as the limit does."""
    out = io.StringIO()
    began = time.time() - 30.0
    view = ProgressView(4, "accuracy", stream=out, deadline=began + 60.0, began=began)
    a = trial("a", "1")
    view.on_trial_start(0, [], a)
    a.last_result = {"final": True, "final_val_accuracy": 0.9, "train_seconds": 29.0}
    view.on_trial_complete(0, [], a)
    b = trial("b", "2", {"final": True, "epoch": 0, "skipped": "runner.time_limit passed"})
    view.on_trial_complete(0, [], b)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("[2/4 done, 1 skipped, 0 running | best 0.9000 a | 30s, ~")
    assert "b skipped: runner.time_limit passed" in last
    view.paced_from -= 100.0  # one member done in 100 s of this view: two more take 200 s,
    assert view.short_status().endswith("| 30s, ~30s left")  # but the limit leaves 30 s
    assert "1 skipped" in view.status() and "stopped early" not in view.status()
