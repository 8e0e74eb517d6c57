"""The leaderboard and summary.json."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from runner.report import leaderboard, write_summary

SUMMARY = {
    "metric": "accuracy",
    "members": [
        {
            "name": "a",
            "model": "mlp",
            "status": "FINISHED",
            "val_metric": 0.9,
            "test_metric": 0.8,
            "train_seconds": 1.0,
        },
        {
            "name": "b",
            "model": "svm",
            "status": "FINISHED",
            "val_metric": 0.95,
            "test_metric": 0.9,
            "train_seconds": 2.0,
        },
        {"name": "c", "model": "selu", "status": "FAILED", "train_seconds": None},
    ],
    "ensemble": {
        "method": "weighted",
        "weights": {"a": 0.25, "b": 0.75},
        "val_metric": 0.96,
        "test_metric": 0.93,
    },
}


def test_leaderboard_puts_ensemble_first_then_members_best_val_first():
    lines = leaderboard(SUMMARY).splitlines()
    assert lines[0].split()[:3] == ["member", "model", "status"]
    assert lines[2].startswith("ensemble (weighted)")
    names = [line.split()[0] for line in lines[3:]]
    assert names == ["b", "a", "c"]
    assert "0.750" in lines[3] and "FAILED" in lines[5]


def test_members_tied_on_the_metric_are_listed_by_log_loss_as_the_best_member_is_picked():
    """Every member of an imbalanced table scores 0.975 accuracy: the top row was the first
    listed (lightgbm) while the report's best member was linear, by its better log loss."""
    tied = [
        {
            "name": "lightgbm",
            "model": "lightgbm",
            "status": "FINISHED",
            "val_metric": 0.975,
            "test_metric": 0.975,
            "val_scores": {"accuracy": 0.975, "log_loss": 0.1152},
        },
        {
            "name": "linear",
            "model": "linear",
            "status": "FINISHED",
            "val_metric": 0.975,
            "test_metric": 0.975,
            "val_scores": {"accuracy": 0.975, "log_loss": 0.1128},
        },
    ]
    lines = leaderboard({**SUMMARY, "members": tied}).splitlines()
    assert [line.split()[0] for line in lines[3:]] == ["linear", "lightgbm"]
    for metric, better in (("rmse", "b"), ("accuracy", "b")):  # the metric still comes first
        rows = [
            {**tied[0], "name": "a", "val_metric": 0.5, "val_scores": {"rmse": 0.1}},
            {
                **tied[1],
                "name": "b",
                "val_metric": 0.4 if metric == "rmse" else 0.6,
                "val_scores": {"rmse": 0.9},
            },
        ]
        out = leaderboard({**SUMMARY, "metric": metric, "members": rows}).splitlines()
        assert out[3].split()[0] == better


def test_the_leaderboard_names_members_and_refits_cut_short_by_the_time_limit():
    members = [
        {**SUMMARY["members"][0], "cut_short": {"epochs_run": 3}},
        {**SUMMARY["members"][1], "refit": {"status": "FINISHED", "cut_short": {"epochs_run": 7}}},
        {**SUMMARY["members"][2], "refit": {"status": "FINISHED", "cut_short": {"rounds_run": 9}}},
    ]
    text = leaderboard({**SUMMARY, "members": members})
    assert "kept with what they had trained: a (3 epoch(s))\n" in text
    # a refit cut short is not served: its bag, trained whole, is
    said = "not served (their bags are): b/refit (7 epoch(s)), c/refit (9 round(s))"
    assert said in text
    assert "cut short" not in leaderboard(SUMMARY)


def test_the_leaderboard_tells_a_skipped_member_from_a_bag_whose_late_folds_were_skipped():
    skipped = {"model": "catboost", "status": "SKIPPED", "train_seconds": None}
    members = [
        *SUMMARY["members"][:2],
        {**skipped, "name": "hgb", "error": "runner.time_limit passed before it started"},
        {
            **skipped,
            "name": "cat",
            "error": "3 of 5 folds did not finish: cat/fold2 SKIPPED: runner.time_limit ...",
            "folds_missing": {"missing": 3, "folds": 5},
        },
    ]
    lines = leaderboard({**SUMMARY, "members": members}).splitlines()
    assert "skipped (runner.time_limit passed before they started): hgb" in lines
    assert (
        "left out (runner.time_limit passed before some of their folds started): "
        "cat (3 of 5 folds did not finish)"
    ) in lines


def test_leaderboard_has_no_terminal_control_codes():
    assert "\x1b" not in leaderboard(SUMMARY)


def test_write_summary_round_trips(tmp_path):
    path = write_summary(SUMMARY, tmp_path / "out")
    assert json.loads(path.read_text()) == SUMMARY


def test_leaderboard_markdown_and_html_hold_every_row():
    from runner.report import leaderboard_html, leaderboard_markdown

    summary = {**SUMMARY, "experiment": "quickstart", "sweep_id": "s1"}
    md = leaderboard_markdown(summary).splitlines()
    rows = [line for line in md if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| member | model |")
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["ensemble (weighted)", "b", "a", "c"]
    page = leaderboard_html(summary)
    assert page.startswith("<!DOCTYPE html>") and page.count("<tr>") == 5
    assert "<td>ensemble (weighted)</td>" in page


def _student_case(ensemble: float, best: float, student: float, ms: float) -> str:
    from runner.report import student_line

    st = {
        "name": "mlp/student",
        "model": "mlp",
        "status": "FINISHED",
        "test_metric": student,
        "predict_ms_per_1000": ms,
        "model_bytes": 1000,
    }
    ens = {
        "best_member": "svm",
        "test_metric": ensemble,
        "predict_ms_per_1000": 10.0,
        "model_bytes": 5000,
    }
    return student_line(st, ens, [{"name": "svm", "test_metric": best}], "accuracy")


def test_the_student_line_gives_a_share_of_the_gain_only_where_there_is_one():
    assert "keeps 50% of the ensemble's gain" in _student_case(0.98, 0.96, 0.97, 2.0)
    assert "5.0x faster" in _student_case(0.98, 0.96, 0.97, 2.0)
    lost = _student_case(0.9694, 0.9861, 0.9278, 2.0)  # the ensemble lost to its best member
    assert "keeps" not in lost and "test accuracy 0.9278 (ensemble 0.9694, svm 0.9861)" in lost
    assert "keeps" not in _student_case(0.97, 0.97, 0.96, 2.0)
    below = _student_case(0.951, 0.950, 0.943, 2.0)  # a share would be -700%
    assert "keeps" not in below and "worse than svm" in below
    above = _student_case(0.951, 0.950, 0.990, 2.0)  # ... or 4000%
    assert "keeps" not in above and "better than the ensemble" in above
    assert "2.0x slower" in _student_case(0.98, 0.96, 0.97, 20.0)


def test_the_conformal_line_says_when_too_few_rows_make_the_intervals_infinite():
    from ensembles.conformal import calibrate
    from runner.report import conformal_line

    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    for coverage, finite in ((0.9, True), (0.999, False)):
        fitted = calibrate(coverage, y + rng.normal(size=300), y)
        c = {
            **fitted.to_dict(),
            "calibrated_on": "validation rows",
            "test": {"coverage": 1.0, "mean_width": 2 * fitted.q},
        }
        line = conformal_line(c)
        assert ("needs at least 999 calibration rows" in line) is not finite, line
    c["kind"], c["test"] = "set", {"coverage": 1.0, "mean_set_size": 10.0}
    assert "prediction sets hold every class: 99.9% needs at least 999" in conformal_line(c)


def test_an_ensemble_serving_refits_reports_the_refits_intervals_first():
    from runner.report import leaderboard

    conformal = {
        "kind": "interval",
        "coverage": 0.9,
        "q": 1.5,
        "n_calibration": 600,
        "calibrated_on": "cross-fitted validation predictions",
        "test": {"coverage": 0.942, "mean_width": 4.666e5},
    }
    refit = {
        "test_metric": 0.9,
        "test_scores": {
            "accuracy": 0.9,
            "conformal_coverage": 0.842,
            "conformal_mean_width": 3.23e5,
        },
        "fell_back": [],
    }
    ens = {**SUMMARY["ensemble"], "conformal": conformal, "refit": refit}
    text = leaderboard({**SUMMARY, "ensemble": ens})
    assert (
        "(calibrated on 600 cross-fitted validation predictions): served with refits, test "
        "coverage 0.842, mean interval width 3.23e+05 (the bagged members': coverage 0.942, "
        "mean interval width 4.666e+05)"
    ) in text, text
    assert "test coverage 0.942" in leaderboard({**SUMMARY, "ensemble": {**ens, "refit": None}})


def test_the_champion_line_gives_both_test_scores_rounded():
    from runner.report import champion_line

    kept = {
        "model": "digits",
        "challenger_version": 3,
        "metric": "accuracy",
        "challenger": 0.9583333333,
        "champion_version": "2",
        "champion": 0.97222222,
        "decision": "kept: not better",
    }
    assert champion_line(kept) == (
        "registered digits v3: kept: not better (test accuracy 0.9583 against champion v2's 0.9722)"
    )
    first = {k: kept[k] for k in ("model", "challenger_version", "metric", "challenger")}
    assert champion_line({**first, "decision": "first champion"}) == (
        "registered digits v3: first champion (test accuracy 0.9583)"
    )
    elsewhere = {**first, "champion_version": "2", "decision": "kept: tested on another split"}
    assert champion_line({**elsewhere, "challenger": np.float32(0.5)}) == (
        "registered digits v3: kept: tested on another split (test accuracy 0.5000; champion v2)"
    )


def test_a_served_models_signature_infers_integer_outputs_without_mlflows_input_hint():
    """Conformal prediction sets are class codes: MLflow's hint about integer columns in an
    input schema printed on every classification export with ensemble.coverage."""
    import warnings

    from runner.export import _signature

    served = pd.DataFrame(
        {"prediction": np.array([1, 2]), "set": [np.array([1]), np.array([0, 2])]}
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        signature = _signature(["a", "b"], served)
    assert [c.name for c in signature.outputs.inputs] == ["prediction", "set"]
    assert not [w for w in caught if "integer column" in str(w.message)], caught


def test_the_leaderboard_names_skipped_refits_and_says_when_the_bags_are_served():
    """Every refit skipped by the time limit: the progress view said so, the leaderboard
    named none of them nor that the served model held the bags."""
    members = [
        {**SUMMARY["members"][0], "refit": {"status": "SKIPPED"}},
        {**SUMMARY["members"][1], "refit": {"status": "SKIPPED"}},
        SUMMARY["members"][2],
    ]
    ens = {**SUMMARY["ensemble"], "refit_missing": ["a", "b"]}
    text = leaderboard({**SUMMARY, "members": members, "ensemble": ens})
    assert "skipped (runner.time_limit passed before they started): a/refit, b/refit" in text
    assert "no served member's refit finished whole" in text
    assert "serving the folds' mean for a, b" in text
    assert "refit on all rows" not in leaderboard(SUMMARY)


def test_a_gain_that_rounds_to_zero_has_no_minus_sign():
    """metric=log_loss printed 'gain -0.0000'."""
    from runner.report import _signed

    assert _signed(-1e-9) == _signed(0.0) == "+0.0000"
    assert _signed(-0.00012) == "-0.0001" and _signed(0.25) == "+0.2500"


def test_the_refit_line_shows_only_refits_the_model_serves():
    """A refit cut short (not served) was shown as 'mlp 0.91 -> 0.62', then 'serving the
    folds' mean for mlp'."""
    from runner.report import refit_line

    members = [
        {"name": "a", "test_metric": 0.9, "refit": {"status": "FINISHED", "test_metric": 0.92}},
        {"name": "b", "test_metric": 0.91, "refit": {"status": "FINISHED", "test_metric": 0.62}},
    ]
    ens = {
        "test_metric": 0.93,
        "weights": {"a": 0.5, "b": 0.5},
        "refit": {"test_metric": 0.94, "fell_back": ["b"]},
    }
    line = refit_line(ens, members, "accuracy")
    assert "(a 0.9000 -> 0.9200); serving the folds' mean for b" in line, line


def test_a_member_worse_than_a_constant_prediction_is_named_under_the_leaderboard(tmp_path):
    """A boosting run that diverged after its best round (validation log loss 25 where the
    class shares score 2.2) finished like any other, unremarked."""
    from sklearn.linear_model import Ridge
    from sklearn.neighbors import KNeighborsRegressor

    from ensembles.metrics import evaluate
    from runner.data import load
    from runner.data.types import DataSpec
    from runner.sweep import _flag_worse_than_constant

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    frame["y"] = 0.3 * frame["a"] + rng.normal(size=400)  # mostly noise
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load(DataSpec("csv", path=str(tmp_path / "t.csv"), target="y"))
    rows = []
    for name, model in (("ridge", Ridge()), ("nn1", KNeighborsRegressor(n_neighbors=1))):
        model.fit(data.X_train, data.y_train)
        val = evaluate(data.y_val, model.predict(data.X_val))
        rows.append({"name": name, "model": name, "status": "FINISHED", "val_scores": val,
                     "val_metric": val["rmse"], "test_metric": val["rmse"]})  # fmt: skip
    summary = {**SUMMARY, "metric": "rmse", "members": rows, "ensemble": None}
    _flag_worse_than_constant(summary, data)
    constant = float(np.sqrt(np.mean((data.y_val - data.y_train.mean()) ** 2)))
    assert summary["constant_val"] == {"rmse": pytest.approx(constant)}
    assert [m.get("worse_than_constant", False) for m in rows] == [False, True]
    said = (
        "worse on validation than predicting the training rows' mean (rmse "
        f"{constant:.4f}), diverged or stuck: nn1 ({rows[1]['val_scores']['rmse']:.4f})"
    )
    assert said in leaderboard(summary)
    assert "worse on validation" not in leaderboard(SUMMARY)
