"""Split-conformal intervals and prediction sets (ensembles/conformal.py): coverage holds over
many random splits within its binomial tolerance, intervals follow the members' spread, and
nothing depends on the target's units."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from test_tabular import made_table

from ensembles import conformal
from helpers import read_summary, run_cli, serve_elsewhere


def regression_world(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Five members around a truth whose noise grows with |x|; members disagree more there."""
    x = rng.uniform(-3, 3, n)
    truth = np.sin(x) * 2
    noise = 0.2 + 0.5 * np.abs(x)
    y = truth + rng.normal(size=n) * noise
    P = np.stack([truth + rng.normal(size=n) * noise * 0.7 for _ in range(5)])
    return P, y


def bagged_world(n: int, rng: np.random.Generator, folds: int = 5):
    """Five bagged members of ``folds`` fold models each, around ``regression_world``'s truth:
    each member errs its own way on a row, each fold model a little more; a row's
    out-of-fold prediction comes from one fold's models, a new row's from their mean."""
    x = rng.uniform(-3, 3, n)
    truth = np.sin(x) * 2
    noise = 0.2 + 0.5 * np.abs(x)
    y = truth + rng.normal(size=n) * noise
    bias = rng.normal(size=(5, n)) * noise * 0.3
    by_fold = truth + bias + rng.normal(size=(folds, 5, n)) * noise * 0.3
    out_of_fold = by_fold[np.arange(n) % folds, :, np.arange(n)].T  # (members, rows)
    return out_of_fold, by_fold, y


def classification_world(n: int, rng: np.random.Generator, k: int = 4):
    """Probabilities from a Dirichlet and labels drawn from them (so they are calibrated)."""
    proba = rng.dirichlet(np.full(k, 0.6), size=n)
    y = np.array([rng.choice(k, p=p) for p in proba])
    return proba, y


def tolerance(coverage: float, n_cal: int, n_test: int, repeats: int) -> float:
    """Four standard deviations of the mean test coverage over ``repeats`` splits: each
    split's coverage is Beta-distributed around the target (calibration) plus binomial noise
    over the test rows."""
    var = coverage * (1 - coverage) * (1 / (n_cal + 2) + 1 / n_test) / repeats
    return 4 * math.sqrt(var)


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_regression_intervals_cover_as_promised_over_many_splits(coverage):
    rng = np.random.default_rng(0)
    n_cal, n_test, repeats = 300, 1000, 200
    found = []
    for _ in range(repeats):
        P, y = regression_world(n_cal + n_test, rng)
        w = np.full(5, 0.2)
        pred, s = w @ P, conformal.spread(P, w)
        cal, test = slice(0, n_cal), slice(n_cal, None)
        fitted = conformal.calibrate(coverage, pred[cal], y[cal], s[cal])
        found.append(conformal.evaluate_on(fitted, pred[test], y[test], s[test])["coverage"])
    tol = tolerance(coverage, n_cal, n_test, repeats)
    assert coverage - tol <= np.mean(found) <= coverage + 1 / (n_cal + 1) + tol


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_intervals_of_bagged_members_cover_as_promised_over_many_splits(coverage):
    """Calibrated on out-of-fold predictions, the intervals of new rows are built around the
    mean of the folds' models with the members' spread taken fold by fold: the mean's spread
    is smaller, and with it the intervals covered 3 to 5 points too few rows here."""
    rng = np.random.default_rng(2)
    n_cal, n_test, repeats = 300, 1000, 200
    found = []
    for _ in range(repeats):
        out_of_fold, by_fold, y = bagged_world(n_cal + n_test, rng)
        w = np.full(5, 0.2)
        cal, test = slice(0, n_cal), slice(n_cal, None)
        fitted = conformal.calibrate(
            coverage, w @ out_of_fold[:, cal], y[cal], conformal.spread(out_of_fold[:, cal], w)
        )
        mean = by_fold[:, :, test].mean(axis=0)  # what a bagged member predicts
        s = conformal.spread(by_fold[:, :, test], w)
        found.append(conformal.evaluate_on(fitted, w @ mean, y[test], s)["coverage"])
    # the mean of the folds' models also errs less than one fold's: at most a little over
    assert coverage - tolerance(coverage, n_cal, n_test, repeats) <= np.mean(found)
    assert np.mean(found) <= coverage + 0.03


def test_the_spread_of_bagged_members_is_each_folds_spread_averaged_in_squares():
    rng = np.random.default_rng(3)
    by_fold, w = rng.normal(size=(4, 3, 50)), np.array([0.5, 0.3, 0.2])
    each = [conformal.spread(by_fold[k], w) for k in range(4)]
    np.testing.assert_allclose(
        conformal.spread(by_fold, w), np.sqrt(np.mean(np.square(each), axis=0))
    )
    assert np.all(conformal.spread(by_fold, w) > conformal.spread(by_fold.mean(axis=0), w))


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_prediction_sets_cover_as_promised_over_many_splits(coverage):
    rng = np.random.default_rng(1)
    n_cal, n_test, repeats = 300, 1000, 200
    found, sizes = [], []
    for _ in range(repeats):
        proba, y = classification_world(n_cal + n_test, rng)
        fitted = conformal.calibrate(coverage, proba[:n_cal], y[:n_cal])
        scores = conformal.evaluate_on(fitted, proba[n_cal:], y[n_cal:])
        found.append(scores["coverage"])
        sizes.append(scores["mean_set_size"])
    tol = tolerance(coverage, n_cal, n_test, repeats)
    assert coverage - tol <= np.mean(found) <= coverage + 1 / (n_cal + 1) + tol
    assert 1 <= np.mean(sizes) < 4  # adaptive: smaller than every class


def test_sets_hold_the_most_probable_classes_first_and_the_same_row_the_same_set():
    rng = np.random.default_rng(6)
    proba = rng.dirichlet(np.full(5, 0.5), size=500)
    for q in (0.0, 0.3, 0.6, 0.9):
        sets = conformal.Conformal(0.9, "set", q=q).sets(proba)
        ranked = np.take_along_axis(sets, np.argsort(-proba, axis=1, kind="stable"), axis=1)
        assert (np.diff(ranked.astype(int), axis=1) <= 0).all()  # a prefix of the ranking
        np.testing.assert_array_equal(sets, conformal.Conformal(0.9, "set", q=q).sets(proba))
    assert conformal.Conformal(0.9, "set", q=1.0).sets(proba).all()  # everything fits


def test_a_confident_accurate_model_gets_single_class_sets():
    """97% of rows right with 0.97 on the top class: at 80% coverage the sets hold one class
    or none, never a tail of unlikely classes."""
    rng = np.random.default_rng(7)
    n, k = 4000, 10
    y = rng.integers(0, k, n)
    top = np.where(rng.random(n) < 0.97, y, (y + 1) % k)
    proba = np.full((n, k), 0.03 / (k - 1))
    proba[np.arange(n), top] = 0.97
    proba += rng.uniform(0, 1e-3, (n, k))  # a model's probabilities are never exactly equal
    proba /= proba.sum(axis=1, keepdims=True)
    fitted = conformal.calibrate(0.8, proba[:2000], y[:2000])
    scores = conformal.evaluate_on(fitted, proba[2000:], y[2000:])
    assert abs(scores["coverage"] - 0.8) < 0.03 and scores["mean_set_size"] <= 1.0


def test_sets_of_a_very_confident_model_cover_every_class_alike():
    """Top probabilities above 0.9999 (boosters, refits on easy tables): each row's share of
    its own probability, meant to look uniform, was fixed by its most likely class, so at
    80% one class's rows were covered 57% of the time and the others' 94%, and at 95% the
    sets held 1.65 classes where 1.1 do."""
    rng = np.random.default_rng(3)

    def world(n: int) -> tuple[np.ndarray, np.ndarray]:
        logits = rng.normal(0.0, 12.0, size=(n, 3))
        proba = np.exp(logits - logits.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        return proba, (rng.random(n)[:, None] > np.cumsum(proba, axis=1)).sum(axis=1)

    (cal, y_cal), (test, y_test) = world(3000), world(3000)
    fitted = conformal.calibrate(0.8, cal, y_cal)
    sets = fitted.sets(test)
    covered = sets[np.arange(len(y_test)), y_test]
    by_class = [covered[y_test == c].mean() for c in range(3)]
    assert max(by_class) - min(by_class) < 0.1, by_class
    wide = conformal.calibrate(0.95, cal, y_cal)
    assert conformal.evaluate_on(wide, test, y_test)["mean_set_size"] < 1.3


def test_a_served_rows_set_does_not_depend_on_the_batch_it_came_in():
    """A model's probabilities differ in their last bits with the batch size (1e-16): hashed
    bit for bit, 282 of 1000 rows got another set one at a time than in one batch."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(3000, 20, n_informative=10, n_classes=5, random_state=0)
    model = LogisticRegression(max_iter=2000).fit(X[:1000], y[:1000])
    fitted = conformal.calibrate(0.9, model.predict_proba(X[1000:2000]), y[1000:2000])
    batch = model.predict_proba(X[2000:])
    single = np.vstack([model.predict_proba(X[i : i + 1]) for i in range(2000, 3000)])
    np.testing.assert_array_equal(fitted.sets(batch), fitted.sets(single))
    # every probability one step of float64 away, up or down, as another batch size gives
    ways = np.where(np.random.default_rng(0).random(batch.shape) < 0.5, 0.0, 1.0)
    np.testing.assert_array_equal(fitted.sets(batch), fitted.sets(np.nextafter(batch, ways)))
    as_float32 = batch.astype(np.float32).astype(np.float64)  # a Keras member's precision
    assert (fitted.sets(batch) != fitted.sets(as_float32)).any(axis=1).mean() < 0.01


def test_intervals_are_wider_where_members_disagree():
    rng = np.random.default_rng(2)
    P, y = regression_world(4000, rng)
    w = np.full(5, 0.2)
    pred, s = w @ P, conformal.spread(P, w)
    fitted = conformal.calibrate(0.9, pred[:2000], y[:2000], s[:2000])
    lo, hi = fitted.interval(pred[2000:], s[2000:])
    width = hi - lo
    assert np.corrcoef(width, s[2000:])[0, 1] > 0.99
    plain = conformal.calibrate(0.9, pred[:2000], y[:2000])
    normalised = conformal.evaluate_on(fitted, pred[2000:], y[2000:], s[2000:])
    flat = conformal.evaluate_on(plain, pred[2000:], y[2000:])
    assert normalised["mean_width"] < flat["mean_width"]  # same coverage, tighter on average


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e6])
def test_intervals_scale_with_the_target_and_cover_the_same_rows(scale):
    rng = np.random.default_rng(3)
    P, y = regression_world(1000, rng)
    w = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    base = conformal.calibrate(0.9, w @ P[:, :500], y[:500], conformal.spread(P[:, :500], w))
    P2, y2 = P * scale, y * scale
    scaled = conformal.calibrate(0.9, w @ P2[:, :500], y2[:500], conformal.spread(P2[:, :500], w))
    lo, hi = base.interval(w @ P[:, 500:], conformal.spread(P[:, 500:], w))
    lo2, hi2 = scaled.interval(w @ P2[:, 500:], conformal.spread(P2[:, 500:], w))
    np.testing.assert_allclose(lo2, lo * scale, rtol=1e-9)
    np.testing.assert_allclose(hi2, hi * scale, rtol=1e-9)


def test_too_few_calibration_rows_give_unbounded_intervals_not_false_promises():
    fitted = conformal.calibrate(0.95, np.zeros(10), np.ones(10))
    assert fitted.q == float("inf")  # ceil(11 * 0.95) = 11 > 10 rows


def test_the_coverage_curve_follows_the_diagonal():
    rng = np.random.default_rng(4)
    proba, y = classification_world(3000, rng)
    curve = conformal.coverage_curve((proba[:1500], y[:1500], None), (proba[1500:], y[1500:], None))
    gaps = np.abs(np.array(curve["test"]) - np.array(curve["target"]))
    assert len(curve["target"]) == 25 and gaps.max() < 0.05


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "0.9", True])
def test_a_coverage_outside_zero_and_one_is_refused_naming_it(bad):
    with pytest.raises(
        ValueError, match=rf"coverage must be null or a number in \(0, 1\), got {bad!r}"
    ):
        conformal.check_coverage(bad)
    assert conformal.check_coverage(None) is None and conformal.check_coverage(0.9) == 0.9


def test_the_ensemble_stage_calibrates_on_validation_and_reports_test_coverage():
    from ensembles.stage import MemberPredictions, run

    rng = np.random.default_rng(5)
    P, y = regression_world(3000, rng)
    members = [MemberPredictions(f"m{i}", P[i, :1500], P[i, 1500:]) for i in range(5)]
    report = run("weighted", {}, members, y[:1500], y[1500:], coverage=0.9)
    c = report.conformal
    assert c["kind"] == "interval" and c["coverage"] == 0.9 and c["n_calibration"] == 1500
    assert abs(c["test"]["coverage"] - 0.9) < 0.03 and c["test"]["mean_width"] > 0
    assert len(c["curve"]["target"]) == len(c["curve"]["test"]) == 25
    assert report.summary()["conformal"] is c
    assert run("weighted", {}, members, y[:1500], y[1500:]).conformal is None


def test_the_ensemble_stage_takes_bagged_members_spread_on_test_fold_by_fold():
    from ensembles.stage import MemberPredictions, run

    rng = np.random.default_rng(6)
    out_of_fold, by_fold, y = bagged_world(4000, rng)
    cal, test = slice(0, 2000), slice(2000, None)
    mean = by_fold[:, :, test].mean(axis=0)

    def covered(with_folds: bool) -> float:
        members = [
            MemberPredictions(
                f"m{i}",
                out_of_fold[i, cal],
                mean[i],
                test_folds=by_fold[:, i, test] if with_folds else None,
            )
            for i in range(5)
        ]
        report = run("weighted", {}, members, y[cal], y[test], coverage=0.9, n_boot=10)
        return report.conformal["test"]["coverage"]

    assert covered(True) >= 0.88  # 2,000 test rows: within about three of their deviations
    assert covered(False) < covered(True) - 0.02  # the folds' mean alone: too narrow


SERVE = """
import json, sys, mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
rows = pd.read_csv(sys.argv[2]).drop(columns=[sys.argv[3]]).tail(40)
rows.loc[rows.index[0], "size"] = None
rows.loc[rows.index[1], "color"] = "never seen"
out = model.predict(rows)
assert list(out.index) == list(rows.index), out.index  # the rows' own labels (360..399)
named = out if "lower" in out else model.predict(rows, params={"output": "labels"})
print(json.dumps({"columns": list(out.columns), "rows": out.to_dict("records"),
                  "named": named.to_dict("records"),
                  "classes": (model.metadata.metadata or {}).get("classes")}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("target", ["price", "label"])
def test_a_sweep_with_a_coverage_target_serves_intervals_or_sets(tmp_path, target):
    """Regression in dollars gets intervals, classification prediction sets: calibrated on
    validation, their test coverage on the leaderboard and in MLflow (with a coverage
    plot), and the exported model returns them for raw rows in a fresh process."""
    frame, y_class, y_dollars = made_table(400)
    path = tmp_path / "table.csv"
    values = y_dollars if target == "price" else np.where(y_class == 1, "yes", "no")
    frame.assign(**{target: values}).to_csv(path, index=False)
    db = f"sqlite:///{tmp_path}/mlflow.db"
    done = run_cli(
        tmp_path,
        "+experiment=tabular",
        f"data.path={path}",
        f"data.target={target}",
        "ensemble.coverage=0.9",
        "ensemble.register_as=covered",  # loaded back and scored before it may be champion
        "ensemble.champion=true",
        "runner.folds=0",  # split conformal on the validation rows
        *(f"~members.{m}" for m in ("xgboost", "catboost", "hgb", "knn")),
        *(f"~members.{m}" for m in ("mlp", "wide_deep", "selu")),
        "members.lightgbm.hparams.n_estimators=60",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    kind = "intervals" if target == "price" else "prediction sets"
    assert f"conformal {kind} for 90% coverage" in done.stdout
    ens = read_summary(tmp_path / "out")["ensemble"]
    # its frame of intervals or sets was compared whole with the logged predictions: "kept"
    assert ens["champion"]["decision"] == "first champion", ens["champion"]
    c = ens["conformal"]
    assert (
        0.75 <= c["test"]["coverage"] <= 1.0
    )  # 80 test rows: loose, the guarantee is tested above
    client = MlflowClient(db)
    run = client.get_run(ens["run_id"])
    assert run.data.metrics["conformal.test_coverage"] == pytest.approx(c["test"]["coverage"])
    assert "coverage.png" in {a.path for a in client.list_artifacts(ens["run_id"])}
    served = serve_elsewhere(tmp_path, db, SERVE, ens["model_uri"], str(path), target)
    assert served.returncode == 0, served.stderr[-3000:]
    out = json.loads(served.stdout.strip().splitlines()[-1])
    rows = out["rows"]
    assert len(rows) == 40
    if target == "price":
        assert out["columns"] == ["prediction", "lower", "upper"]
        assert all(r["lower"] < r["prediction"] < r["upper"] for r in rows)
        assert all(r["upper"] - r["lower"] > 100 for r in rows)  # dollars, not scaled units
    else:
        assert out["columns"] == ["proba_0", "proba_1", "prediction", "set"]
        assert all(set(r["set"]) <= {0, 1} for r in rows)
        assert any(r["prediction"] in r["set"] for r in rows)
        classes = out["classes"]
        assert classes == ["no", "yes"]  # asked for labels, the same frame in names
        assert [n["prediction"] for n in out["named"]] == [classes[r["prediction"]] for r in rows]
        assert [n["set"] for n in out["named"]] == [[classes[k] for k in r["set"]] for r in rows]


@pytest.mark.parametrize("bad", ["1.5", "0", "high"])
def test_a_bad_coverage_target_stops_the_sweep_before_it_starts(bad):
    from test_spec import spec_of

    from runner.spec import SpecError

    with pytest.raises(
        SpecError, match=r"^ensemble.coverage: must be null or a number in \(0, 1\)"
    ):
        spec_of(f"ensemble.coverage={bad}")
    assert spec_of("ensemble.coverage=0.9").ensemble.coverage == 0.9


SERVE_BAGGED = """
import json, sys, mlflow
from runner.data import DataSpec, bagged, load
spec = DataSpec("csv", 0.2, 0.2, 0, path=sys.argv[2], target="price")
data = bagged(load(spec), 3, seed=0)
out = mlflow.pyfunc.load_model(sys.argv[1]).predict(data.X_test)
print(json.dumps({"lower": out["lower"].tolist(), "upper": out["upper"].tolist(),
                  "prediction": out["prediction"].tolist(), "y": data.y_test.tolist()}))
"""


@pytest.mark.slow
def test_a_bagged_sweep_serves_the_intervals_it_measured_on_test(tmp_path):
    """Bagged members: the served model takes the members' spread fold by fold, as the
    ensemble stage did when it measured the intervals on test (and as the out-of-fold rows
    that calibrated them had it); from the folds' mean alone its intervals were narrower."""
    frame, _, y_dollars = made_table(300)
    path = tmp_path / "table.csv"
    frame.assign(price=y_dollars).to_csv(path, index=False)
    db = f"sqlite:///{tmp_path}/mlflow.db"
    done = run_cli(
        tmp_path,
        "+experiment=tabular",
        f"data.path={path}",
        "data.target=price",
        "ensemble.coverage=0.9",
        "ensemble=weighted",
        "runner.folds=3",
        *(f"~members.{m}" for m in ("xgboost", "catboost", "hgb", "extra_trees")),
        *(f"~members.{m}" for m in ("mlp", "wide_deep", "selu")),
        "members.lightgbm.hparams.n_estimators=40",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ens = read_summary(tmp_path / "out")["ensemble"]
    test = ens["conformal"]["test"]
    served = serve_elsewhere(tmp_path, db, SERVE_BAGGED, ens["model_uri"], str(path))
    assert served.returncode == 0, served.stderr[-3000:]
    out = json.loads(served.stdout.strip().splitlines()[-1])
    lower, upper, y = (np.array(out[k]) for k in ("lower", "upper", "y"))
    assert np.mean(upper - lower) == pytest.approx(test["mean_width"], rel=1e-4)
    assert np.mean((lower <= y) & (y <= upper)) == pytest.approx(test["coverage"])
    # and wider than around the spread of the members' fold means (what both took before)
    assert ens["conformal"]["spread_by_fold"] is True
    client, names = MlflowClient(db), list(ens["weights"])
    runs = {m["name"]: m["run_id"] for m in read_summary(tmp_path / "out")["members"]}
    means = []
    for name in names:
        local = client.download_artifacts(runs[name], "predictions.npz", str(tmp_path / name))
        with np.load(local) as npz:
            means.append(npz["test"])
            assert npz["test_folds"].shape == (3, len(y))
    plain = conformal.spread(np.stack(means), np.array([ens["weights"][n] for n in names]))
    c = ens["conformal"]
    half = np.array(out["upper"]) - np.array(out["prediction"])  # lower stops at 0 (prices)
    assert np.mean(half) > np.mean(c["q"] * (plain + c["floor"])) * 1.001


def test_a_column_of_values_is_taken_as_values_and_mismatched_rows_are_refused():
    """(n, 1) against (n,) compared every row with every other: coverage 0.28 for 0.87."""
    rng = np.random.default_rng(7)
    P, y = regression_world(1300, rng)
    pred = P.mean(axis=0)
    fitted = conformal.calibrate(np.float32(0.9), pred[:300], y[:300])  # numpy's floats too
    flat = conformal.evaluate_on(fitted, pred[300:], y[300:])
    assert conformal.evaluate_on(fitted, pred[300:, None], y[300:]) == flat
    assert conformal.evaluate_on(fitted, pred[300:], y[300:, None]) == flat
    column = conformal.calibrate(0.9, pred[:300, None], y[:300, None])
    assert column.kind == "interval" and column.q == fitted.q
    with pytest.raises(ValueError, match=r"got \(1000,\) and \(999,\)"):
        conformal.evaluate_on(fitted, pred[300:], y[301:])
    with pytest.raises(ValueError, match=r"interval predictor takes values, got shape \(5, 3\)"):
        conformal.evaluate_on(fitted, np.full((5, 3), 1 / 3), np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match=r"spread must hold one value per row \(300\), got 2"):
        conformal.calibrate(0.9, pred[:300], y[:300], np.ones(2))


def test_class_ids_outside_the_classes_and_bad_fold_shapes_are_refused():
    from ensembles.stage import MemberPredictions

    proba = np.full((10, 3), 1 / 3)
    for bad in (-1, 3):
        with pytest.raises(ValueError, match=rf"classes must be ids in \[0, 3\), got {bad}"):
            conformal.calibrate(0.9, proba, np.full(10, bad))
    column = MemberPredictions(
        "m", np.zeros((8, 1)), np.zeros((4, 1)), test_folds=np.zeros((3, 4, 1))
    )
    assert column.test.shape == (4,) and column.test_folds.shape == (3, 4)
    with pytest.raises(ValueError, match=r"test_folds must be shaped \(folds, 4\)"):
        MemberPredictions("m", np.zeros(8), np.zeros(4), test_folds=np.zeros((3, 5)))


def test_a_target_never_negative_gets_no_negative_lower_bounds():
    rng = np.random.default_rng(5)
    price = rng.gamma(2.0, 1000.0, 2000)  # dollars, never negative
    pred = price + rng.normal(0, 800, 2000)
    fitted = conformal.calibrate(0.9, pred[:1000], price[:1000])
    lo, hi = fitted.interval(pred[1000:], np.zeros(1000))
    assert fitted.lowest == 0.0 and (hi >= lo).all()
    # 0, or the prediction itself where a far-out row's is below 0: each row's interval holds
    # its own prediction
    assert (lo == np.minimum(0.0, pred[1000:])).any() and (lo >= np.minimum(0, pred[1000:])).all()
    assert (lo <= pred[1000:]).all() and (pred[1000:] <= hi).all()
    assert conformal.evaluate_on(fitted, pred[1000:], price[1000:])["coverage"] >= 0.87
    frame = conformal.served_frame(conformal.Conformal.from_dict(fitted.to_dict()), pred, None)
    assert (
        frame["lower"] == np.maximum(np.minimum(0.0, pred), pred - fitted.q * fitted.floor)
    ).all()
    far = fitted.interval(np.array([-2175.0]), np.zeros(1))
    assert far[0][0] == -2175.0 < far[1][0]
    # a target that goes below 0 keeps symmetric intervals; a model saved without the field too
    signed = conformal.calibrate(0.9, pred[:1000] - 3000, price[:1000] - 3000)
    assert signed.lowest is None and signed.interval(np.array([-5000.0]), np.zeros(1))[0] < -5000
    old = {k: v for k, v in fitted.to_dict().items() if k != "lowest"}
    assert conformal.Conformal.from_dict(old).interval(np.array([0.0]), np.zeros(1))[0] < 0


def test_a_few_calibration_rows_all_at_or_above_zero_do_not_clip_the_intervals():
    """Four rows of a target negative half the time are all >= 0 one time in 16: clipping
    then uncovered every negative row, and the coverage of 0.8 fell to 0.78 over splits."""
    rng = np.random.default_rng(5)

    def rows(n):
        x = rng.uniform(-2, 2, n)
        return x + 0.1, x + rng.normal(size=n) * (0.2 + np.abs(x))

    covered = []
    for _ in range(2000):
        pred, y = rows(4)
        fitted = conformal.calibrate(0.8, pred, y)
        assert fitted.lowest is None  # 4 rows cannot show a target is never negative
        covered.append(conformal.evaluate_on(fitted, *rows(200))["coverage"])
    assert np.mean(covered) >= 0.8 - 3 * np.std(covered) / np.sqrt(len(covered))
    # enough rows to tell: 30 per unit of miss rate
    price = rng.gamma(2.0, 1000.0, 150)
    assert conformal.calibrate(0.8, price + 1.0, price).lowest == 0.0
    assert conformal.calibrate(0.9, price + 1.0, price).lowest is None


def test_prediction_sets_do_not_change_when_the_classes_are_renumbered():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.full(5, 0.5), 500)
    y = np.array([rng.choice(5, p=row) for row in proba])
    order = np.array([3, 1, 4, 0, 2])
    back = np.argsort(order)
    fitted = conformal.calibrate(0.9, proba, y)
    renumbered = conformal.calibrate(0.9, proba[:, order], back[y])
    assert fitted.q == renumbered.q
    np.testing.assert_array_equal(fitted.sets(proba), renumbered.sets(proba[:, order])[:, back])


def test_a_predictor_calibrated_without_spread_ignores_one_and_an_old_one_reads_it():
    """Calibrated on plain errors, it took a spread given later as a scale: intervals 8 times
    too wide, covering every row. A predictor saved before ``scaled`` was recorded was
    calibrated by the runner on spread-scaled errors, and still reads the spread."""
    rng = np.random.default_rng(3)
    y = rng.normal(0, 10, 2000)
    pred = y + rng.normal(0, 5, 2000)
    spread_ = rng.uniform(5, 15, 2000)
    plain = conformal.calibrate(0.9, pred[:1000], y[:1000])
    with_spread = conformal.evaluate_on(plain, pred[1000:], y[1000:], spread_[1000:])
    assert with_spread == conformal.evaluate_on(plain, pred[1000:], y[1000:])
    assert 0.87 <= with_spread["coverage"] <= 0.93
    scaled = conformal.calibrate(0.9, pred[:1000], y[:1000], spread_[:1000])
    legacy = {k: v for k, v in scaled.to_dict().items() if k != "scaled"}
    again = conformal.Conformal.from_dict(legacy)
    assert again.scaled
    np.testing.assert_allclose(
        again.interval(pred[:3], spread_[:3]), scaled.interval(pred[:3], spread_[:3])
    )


def test_arrays_with_nan_and_a_scaled_predictor_without_spread_are_refused():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    pred, s = y + rng.normal(size=200), np.abs(rng.normal(size=200)) + 0.1
    with pytest.raises(ValueError, match=r"predictions must be finite numbers, got 1 NaN"):
        conformal.calibrate(0.9, np.where(np.arange(200) == 7, np.nan, pred), y)
    scaled = conformal.calibrate(0.9, pred, y, s)
    assert conformal.evaluate_on(scaled, pred, y, s)["coverage"] >= 0.85
    with pytest.raises(ValueError, match=r"calibrated on errors scaled by the members' spread"):
        conformal.evaluate_on(scaled, pred, y)
    plain = conformal.calibrate(0.9, pred, y)  # no spread: plain absolute errors
    assert conformal.served_frame(plain, pred, None).shape == (200, 3)
