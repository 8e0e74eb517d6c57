"""Latency and size budgets (``ensemble.max_latency_ms``, ``ensemble.max_members``): forward
selection within the budget for every method, its Pareto plot, and a sweep served within it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from test_tabular import awkward_rows, made_table

from ensembles import METHODS, Budget, make
from ensembles.budget import check_limits, validation_loss
from ensembles.plots import pareto_front, pareto_plot
from ensembles.stage import MemberPredictions, run
from helpers import INFRA_MEMBERS, read_summary, run_cli, run_ensembles_cli, serve_elsewhere
from models import safe_io

COSTS = (100.0, 80.0, 60.0, 40.0, 30.0, 20.0, 10.0, 5.0)


def members_world(n: int, seed: int = 0, classes: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eight members, the expensive ones the most accurate, errors independent."""
    rng = np.random.default_rng(seed)
    noise = np.array([0.5 + 0.1 * i for i in range(len(COSTS))])
    if not classes:
        y = rng.normal(size=n)
        return y + noise[:, None] * rng.normal(size=(len(COSTS), n)), y
    y = rng.integers(0, classes, n)
    logits = 2.0 * np.eye(classes)[y] + 2.5 * noise[:, None, None] * rng.normal(
        size=(len(COSTS), n, classes)
    )
    P = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    return P, y


def cost_of(est, costs=COSTS) -> float:
    return float(np.asarray(costs)[est.used_members()].sum())


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("classes", [0, 3])
def test_every_method_stays_within_a_latency_budget_and_beats_any_affordable_member(
    method, classes
):
    P, y = members_world(1500, seed=1, classes=classes)
    est = make(method, budget=Budget(COSTS, max_cost=115.0), random_state=0).fit(P, y)
    assert cost_of(est) <= 115.0 and est.cost_ == pytest.approx(cost_of(est))
    assert np.all(est.weights_[np.setdiff1d(np.arange(8), est.subset_)] == 0)
    alone = [validation_loss(p, y) for p, c in zip(P, COSTS, strict=True) if c <= 115]
    pred = est.predict(P)
    if method != "stacking":  # stacking's selection reads its out-of-fold loss
        assert validation_loss(pred, y) == pytest.approx(est.loss_)
    if method != "mean":  # a uniform mean of unequal members may not beat the best alone
        assert est.loss_ < min(alone)
        assert len(est.used_members()) >= 2
    assert pred.shape == P.shape[1:]


@pytest.mark.parametrize("classes", [0, 3])
@pytest.mark.parametrize("max_members", [1, 2])
def test_a_budgeted_stacking_keeps_the_out_of_fold_predictions_it_is_scored_on(
    classes, max_members
):
    P, y = members_world(900, seed=4, classes=classes)
    est = make("stacking", budget=Budget(None, max_members=max_members), random_state=0)
    est.fit(P, y)
    assert est.oof_pred_ is est.ensemble_.oof_pred_
    assert est.loss_ == pytest.approx(validation_loss(est.oof_pred_, y))
    assert validation_loss(est.predict(P), y) < est.loss_  # in sample: the rosier number
    P2, y2 = members_world(900, seed=4)
    assert not hasattr(
        make("weighted", budget=Budget(None, max_members=2)).fit(P2, y2), "oof_pred_"
    )


def test_a_size_budget_caps_the_members_that_get_weight():
    P, y = members_world(1500, seed=2)
    full = make("weighted", l2=0.1).fit(P, y)
    assert np.count_nonzero(full.weights_) == 8
    for k in (1, 2, 3):
        est = make("weighted", budget=Budget(None, max_members=k), l2=0.1).fit(P, y)
        assert len(est.used_members()) == k
    two = make("greedy", budget=Budget(None, max_members=2)).fit(P, y)
    assert set(two.used_members()) == {0, 1}  # the two best alone, errors independent


def test_a_loose_budget_finds_the_unconstrained_ensemble():
    P, y = members_world(1500, seed=3)
    full = make("weighted").fit(P, y)
    loose = make("weighted", budget=Budget(COSTS, max_cost=sum(COSTS))).fit(P, y)
    assert loose.loss_ == pytest.approx(validation_loss(full.predict(P), y), rel=1e-3)


def test_cheap_diverse_members_win_over_an_expensive_slightly_better_one():
    """A knapsack: the per-cost rule finds two cheap members together better than the
    expensive best one alone, which the plain rule would start from and be stuck with."""
    rng = np.random.default_rng(4)
    y = rng.normal(size=2000)
    P = np.stack([y + s * rng.normal(size=2000) for s in (0.50, 0.55, 0.55)])
    est = make("weighted", budget=Budget((100.0, 45.0, 45.0), max_cost=100.0)).fit(P, y)
    assert sorted(est.used_members().tolist()) == [1, 2]
    assert est.loss_ < validation_loss(P[0], y)
    assert {0, 1, 2} <= set(est.picked_)  # both rules' paths are remembered


def test_no_affordable_member_is_one_clear_error():
    P, y = members_world(200)
    with pytest.raises(ValueError, match=r"^no member fits max_latency_ms=4: the cheapest .* 5 ms"):
        make("greedy", budget=Budget(COSTS, max_cost=4.0)).fit(P, y)


@pytest.mark.parametrize(
    ("cost", "members", "message"),
    [
        (0, None, r"^max_latency_ms must be a number > 0 or null, got 0"),
        ("fast", None, r"^max_latency_ms must be a number > 0 or null, got 'fast'"),
        (float("inf"), None, r"^max_latency_ms must be a number > 0 or null, got inf"),
        (None, 0, r"^max_members must be an integer >= 1 or null, got 0"),
        (None, 2.5, r"^max_members must be an integer >= 1 or null, got 2.5"),
        (None, True, r"^max_members must be an integer >= 1 or null, got True"),
    ],
)
def test_bad_limits_are_refused_naming_the_value(cost, members, message):
    with pytest.raises(ValueError, match=message):
        check_limits(cost, members)
    assert check_limits(50, 3) == (50.0, 3)


def test_a_budgeted_ensemble_round_trips_through_skops_and_refits_without_a_member(tmp_path):
    P, y = members_world(800, seed=5, classes=3)
    est = make("weighted", budget=Budget(COSTS, max_cost=60.0), l2=0.1).fit(P, y)
    back = safe_io.load(safe_io.dump(est, tmp_path / "est.skops"))
    np.testing.assert_allclose(back.predict(P), est.predict(P))
    for i in range(8):  # the shortcut for members no path picked equals a fresh fit
        keep = np.arange(8) != i
        fresh = make(
            "weighted", budget=Budget(tuple(np.asarray(COSTS)[keep]), max_cost=60.0), l2=0.1
        ).fit(P[keep], y)
        np.testing.assert_allclose(est.refit_without(i, P, y).weights_, fresh.weights_, atol=1e-9)


def test_leaving_out_the_only_affordable_member_leaves_the_cheapest_alone():
    P, y = members_world(300, seed=7)
    est = make("weighted", budget=Budget(COSTS, max_cost=7.0)).fit(P, y)  # only m7 (5 ms)
    assert est.used_members().tolist() == [7]
    without = est.refit_without(7, P, y)  # the cheapest of the rest, m6 (10 ms), over budget
    assert without.used_members().tolist() == [6] and without.cost_ == 10.0
    with pytest.raises(ValueError, match="^no member fits max_latency_ms=7"):
        make("weighted", budget=Budget(COSTS[:7], max_cost=7.0)).fit(P[:7], y)


def test_the_pareto_front_keeps_points_nothing_beats():
    costs, losses = [1, 2, 2, 3, 5, 4], [0.9, 0.5, 0.7, 0.5, 0.2, 0.3]
    assert pareto_front(costs, losses) == [0, 1, 5, 4]


def test_the_stage_reports_the_budget_beside_all_members_and_draws_the_front(tmp_path, caplog):
    P, y = members_world(2000, seed=6)
    val, test = slice(0, 1000), slice(1000, 2000)
    members = [
        MemberPredictions(f"m{i}", P[i, val], P[i, test], cost=None if i == 3 else COSTS[i])
        for i in range(8)
    ]
    report = run("weighted", {"l2": 0.1}, members, y[val], y[test], n_boot=50, max_latency_ms=115)
    b = report.budget
    assert (
        "prediction time of m3 unknown: counted as the slowest member's (100.0 ms)" in caplog.text
    )
    assert b["cost"] <= 115 and b["cost_unit"] == "ms per 1000 rows" and b["loss"] == "rmse"
    assert set(b["members"]) == {n for n, w in report.weights.items() if w > 0}
    assert b["all_members"]["members"] == 8 and b["all_members"]["cost"] == 100 + sum(COSTS) - 40
    assert b["all_members"]["val_loss"] < b["val_loss"]  # the budget costs accuracy here
    assert b["all_members"]["test_scores"]["rmse"] < report.test_scores["rmse"]
    # forward from the best affordable member, backward from all of them
    costs = [c["cost"] for c in b["candidates"]]
    assert len(costs) > 8 and min(costs) <= 115 < max(costs) == b["all_members"]["cost"]
    assert "candidates" not in report.summary()["budget"]
    assert pareto_plot(b, tmp_path / "pareto.png", "t").stat().st_size > 10_000
    # the honest estimate refits the budgeted selection on each fold
    assert report.cross_fitted["ensemble"]["rmse"] > b["val_loss"]
    with pytest.raises(ValueError, match=r"^max_latency_ms=50 needs the members' prediction"):
        none_known = [MemberPredictions(m.name, m.val, m.test) for m in members]
        run("weighted", {}, none_known, y[val], y[test], n_boot=10, max_latency_ms=50)
    sized = run("greedy", {}, none_known, y[val], y[test], n_boot=10, max_members=2)
    assert sized.budget["cost_unit"] == "members" and len(sized.budget["members"]) <= 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ensemble.max_latency_ms=-5", r"^ensemble.max_latency_ms: must be a number > 0"),
        ("ensemble.max_members=0", r"^ensemble.max_members: must be an integer >= 1"),
    ],
)
def test_a_bad_budget_stops_the_sweep_before_it_starts(override, message):
    from test_spec import spec_of

    from runner.spec import SpecError

    with pytest.raises(SpecError, match=message):
        spec_of(override)
    spec = spec_of("ensemble.max_latency_ms=40", "ensemble.max_members=2")
    assert (spec.ensemble.max_latency_ms, spec.ensemble.max_members) == (40.0, 2)


SERVE = """
import json, sys, mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
rows = pd.read_json(sys.argv[2], orient="records")
print(json.dumps(model.predict(rows).tolist()))
"""


@pytest.mark.slow
def test_a_sweep_within_a_size_budget_serves_only_its_members_and_reensembles_by_latency(
    tmp_path,
):
    """A sweep with ``ensemble.max_members=2`` ships two members in its model (served on
    awkward raw rows in a fresh process), logs the Pareto plot and prints the budget; then
    ``python -m ensembles ... max_latency_ms=`` re-ensembles the same members within the
    prediction times they recorded."""
    frame, _, y_dollars = made_table(400)
    path = tmp_path / "table.csv"
    frame.assign(price=y_dollars).to_csv(path, index=False)
    db = f"sqlite:///{tmp_path}/mlflow.db"
    done = run_cli(
        tmp_path,
        "+experiment=tabular",
        f"data.path={path}",
        "data.target=price",
        "ensemble=weighted",
        "ensemble.max_members=2",
        "runner.folds=0",  # trained once: the budget picks among plain members
        *(f"~members.{m}" for m in ("xgboost", "catboost", "mlp", "wide_deep", "selu")),
        "members.lightgbm.hparams.n_estimators=60",
        "members.hgb.hparams.max_iter=60",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "budget (max_members=2): serves " in done.stdout
    summary = read_summary(tmp_path / "out")
    ens = summary["ensemble"]
    weighed = ens["budget"]["all_members"]["members"]  # what the method weighs without it
    assert f"without the budget ({weighed} member(s) with weight): " in done.stdout
    served = [n for n, w in ens["weights"].items() if w > 0]
    assert 1 <= len(served) <= 2 and sorted(served) == sorted(ens["budget"]["members"])
    times = {m["name"]: m["predict_ms_per_1000"] for m in summary["members"]}
    assert ens["predict_ms_per_1000"] == pytest.approx(sum(times[n] for n in served))
    client = MlflowClient(db)
    assert {"pareto.png", "pareto.json"} <= {a.path for a in client.list_artifacts(ens["run_id"])}
    params = client.get_run(ens["run_id"]).data.params
    assert params["budget.max_members"] == "2" and params["max_members"] == "100"  # weighted's
    # the parent run logs the config's own keys: the budget apart from weighted's parameter
    swept = client.get_run(summary["parent_run_id"]).data.params
    assert swept["ensemble.max_members"] == "2" and swept["ensemble.params.max_members"] == "100"
    model = Path(client.download_artifacts(ens["run_id"], "model", str(tmp_path / "dl")))
    spec = json.loads(next(model.rglob("ensemble_spec.json")).read_text())
    assert len(spec["used"]) == len(served)
    awkward = tmp_path / "awkward.json"
    awkward.write_text(awkward_rows().to_json(orient="records"))
    out = serve_elsewhere(tmp_path, db, SERVE, ens["model_uri"], str(awkward))
    assert out.returncode == 0, out.stderr[-3000:]
    pred = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(pred) == len(awkward_rows()) and all(np.isfinite(pred))
    # re-ensemble within a latency budget: the cheapest member and a little more
    limit = 1.5 * min(times.values())
    again = run_ensembles_cli(
        tmp_path,
        "experiment=tabular",
        f"tracking_uri={db}",
        f"max_latency_ms={limit}",
        "n_boot=50",
        "register_as=budgeted",
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "registered budgeted v1" in again.stdout  # said, as a sweep says it
    assert f"budget (max_latency_ms={limit:g}): serves " in again.stdout  # as a sweep says it
    runs = client.search_runs(
        [client.get_experiment_by_name("tabular").experiment_id],
        "tags.`runner.role` = 'ensemble'",
        order_by=["attributes.start_time DESC"],
    )
    pareto = client.download_artifacts(runs[0].info.run_id, "pareto.json", str(tmp_path / "p"))
    budget = json.loads(Path(pareto).read_text())
    assert budget["max_latency_ms"] == pytest.approx(limit)
    assert budget["cost"] <= limit
    assert budget["cost"] == pytest.approx(sum(times[n] for n in budget["members"]))


def test_a_budget_no_member_fits_ends_the_sweep_with_exit_2_and_keeps_its_members(tmp_path):
    """Every member slower than the budget: the sweep ended exit 0 with no served ensemble
    (and no student), so a deploy script went on with nothing to serve. It exits 2 saying
    why, its members and leaderboard kept for python -m ensembles."""
    db = f"sqlite:///{tmp_path}/mlflow.db"
    done = run_cli(
        tmp_path,
        "+experiment=quickstart",
        "smoke=true",
        *INFRA_MEMBERS,
        "ensemble.max_latency_ms=0.000001",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no ensemble: no member fits max_latency_ms=1e-06" in errors[0]
    assert "members are kept (python -m ensembles re-ensembles them" in errors[0]
    summary = read_summary(tmp_path / "out")
    assert summary["ensemble"] is None and "no member fits" in summary["no_ensemble"]
    assert all(m["status"] == "FINISHED" for m in summary["members"])
    client = MlflowClient(db)
    assert client.get_run(summary["parent_run_id"]).info.status == "FINISHED"
    # run again (a nightly job's fixed id): still nothing to serve, not "already finished"
    again = run_cli(
        tmp_path,
        "+experiment=quickstart",
        "smoke=true",
        *INFRA_MEMBERS,
        "ensemble.max_latency_ms=0.000001",
        f"runner.sweep_id={summary['sweep_id']}",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert again.returncode == 2, again.stderr[-3000:]
    assert "finished without an ensemble (no member fits max_latency_ms" in again.stderr


def test_a_budget_on_stacking_selects_by_weighted_fits_and_stacks_what_they_keep(monkeypatch):
    """Each stacking fit cross-fits its meta-learner: the searches' hundreds of them, again per
    fold of the honest estimate and per member left out, ran for minutes on six members."""
    from ensembles.methods import StackingEnsemble

    P, y = members_world(300, classes=3)
    fits = []
    real = StackingEnsemble.fit
    monkeypatch.setattr(StackingEnsemble, "fit", lambda self, *a: fits.append(1) or real(self, *a))
    from ensembles.budget import BudgetedEnsemble

    est = BudgetedEnsemble("stacking", {}, COSTS, None, 3, random_state=0).fit(P, y)
    assert len(fits) == 1  # the chosen members, stacked once
    assert isinstance(est.ensemble_, StackingEnsemble) and len(est.subset_) <= 3
    selector = BudgetedEnsemble("weighted", {}, COSTS, None, 3, random_state=0).fit(P, y)
    np.testing.assert_array_equal(est.subset_, selector.used_members())
    stacked = make("stacking", random_state=0).fit(P[est.subset_], y)
    np.testing.assert_allclose(est.predict(P), stacked.predict(P[est.subset_]))


@pytest.mark.parametrize("classes", [0, 3])
def test_a_budget_the_whole_ensemble_meets_changes_nothing(classes):
    """Two members within a 40 ms budget served one: the forward search's raw validation loss
    beat the weighted fit that its l2 pull towards uniform weights holds back."""
    from ensembles.budget import BudgetedEnsemble

    P, y = members_world(60, seed=3, classes=classes)
    whole = make("weighted", random_state=0).fit(P, y)
    budgeted = BudgetedEnsemble("weighted", {}, COSTS, sum(COSTS), None, random_state=0)
    np.testing.assert_allclose(budgeted.fit(P, y).weights_, whole.weights_)
    capped = BudgetedEnsemble("weighted", {}, None, None, len(COSTS), random_state=0)
    np.testing.assert_allclose(capped.fit(P, y).weights_, whole.weights_)
    # stacking reads every member: a budget that holds them all leaves it whole too
    stacked = BudgetedEnsemble("stacking", {}, COSTS, sum(COSTS), None, random_state=0)
    np.testing.assert_allclose(
        stacked.fit(P, y).predict(P), make("stacking", random_state=0).fit(P, y).predict(P)
    )
    # a useless member first, which the weighted selector gives no weight and stacking reads:
    # left out, it is fitted again, not re-indexed onto its neighbour
    noise = 5 * np.random.default_rng(1).normal(size=P[:1].shape)
    flat = np.full_like(P[:1], 1 / P.shape[2]) if classes else noise
    P2, costs = np.concatenate([flat, P]), (1.0, *COSTS)
    stacked = BudgetedEnsemble("stacking", {}, costs, sum(costs), None, random_state=0)
    stacked.fit(P2, y)
    for i in range(len(costs)):
        keep = np.arange(len(costs)) != i
        without = make("stacking", random_state=0).fit(P2[keep], y)
        np.testing.assert_allclose(
            stacked.refit_without(i, P2, y).predict(P2[keep]), without.predict(P2[keep])
        )
