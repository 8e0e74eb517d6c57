"""Raw table rows: each member fits its own encoding on its training rows (models.tabular),
saves it with its model and serves raw rows (missing values, unseen categories, columns in
any order) in a fresh process; the tabular experiment runs on the penguins table."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import models
from helpers import SHARED_DATA, read_summary, run_cli
from models.base import Task
from models.kind import errors_in_units
from models.tabular import TablePrep, TargetScaler
from models.training import TrainingOptions

PENGUINS = SHARED_DATA / "penguins" / "penguins.csv"
CLASSES, REGRESSION = Task("classification", 2), Task("regression")
# every kind that reads flat rows; the Keras ones train two epochs
TABLE_KINDS = sorted(
    name
    for name, entry in models.REGISTRY.items()
    if not entry.needs_image and name not in ("transfer",)
)


def made_table(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows with what users' tables hold: missing numbers and text, a date, a boolean, an ID
    and a constant column; a class target and one in dollars."""
    rng = np.random.default_rng(seed)
    size = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "code": [f"c-{i:04d}" for i in range(n)],
            "size": size,
            "color": rng.choice(["red", "green", "blue"], n).astype(object),
            "city": rng.choice([f"town{i}" for i in range(60)], n),
            "sold": pd.date_range("2021-01-01", periods=n, freq="12h").astype(str),
            "new": rng.random(n) < 0.5,
            "const": 7,
        }
    )
    frame.loc[::9, "size"] = np.nan
    frame.loc[::11, "color"] = None
    y_class = (np.nan_to_num(size) + (frame["color"] == "red") > 0.3).astype(np.int64)
    y_dollars = 250_000 + 80_000 * np.nan_to_num(size) + 30_000 * frame["new"].to_numpy()
    return frame, y_class, y_dollars


def awkward_rows() -> pd.DataFrame:
    """Rows a user sends a served model: an unseen colour and city, missing cells, a column
    missing entirely ('new'), an extra one, and the columns in another order."""
    return pd.DataFrame(
        {
            "extra": [1, 2, 3],
            "sold": ["2022-05-01", None, "not a date"],
            "color": ["purple", None, "red"],
            "size": [np.nan, 0.5, 1e6],
            "city": ["atlantis", "town3", None],
            "id": [9999, 1, None],
            "const": [7, None, 7],
            "code": ["zz", None, "c-0001"],
        }
    )


def test_the_encoding_is_learned_from_training_rows_and_takes_any_rows():
    frame, _, _ = made_table()
    prep = TablePrep("onehot").fit(frame)
    assert set(prep.dropped) == {"id", "code", "const"}
    assert "an ID" in prep.dropped["id"] and "an ID" in prep.dropped["code"]
    X = prep.transform(frame)
    names = prep.feature_names
    assert X.dtype == np.float32 and X.shape == (len(frame), len(names))
    assert np.isfinite(X).all()
    assert {"size", "size:missing", "sold:year", "sold:weekday", "new"} <= set(names)
    assert {"color=red", "color=__missing__", "color=__rare__"} <= set(names)
    assert "city" in names  # 60 values: frequency-encoded, not 60 one-hot columns
    missing = np.asarray(frame["size"].isna())
    np.testing.assert_array_equal(X[:, names.index("size:missing")], missing)
    served = prep.transform(awkward_rows())
    assert served.shape == (3, len(names)) and np.isfinite(served).all()
    colors = [i for i, name in enumerate(names) if name.startswith("color=")]
    assert not served[0, colors].any()  # unseen, and no rare value in training: no category
    assert served[1, names.index("color=__missing__")] == 1.0
    assert served[0, names.index("city")] == 0.0  # unseen: frequency 0
    assert served[1, names.index("size:missing")] == 0.0 and served[0, names.index("size")] == (
        pytest.approx(float(frame["size"].median()))
    )
    ordinal = TablePrep("ordinal").fit(frame)
    assert len(ordinal.feature_names) < len(names)  # one code column per category column
    again = TablePrep.from_dict(json.loads(json.dumps(prep.to_dict())))
    np.testing.assert_array_equal(again.transform(awkward_rows()), served)


def test_an_unseen_or_missing_category_is_no_category_when_training_had_no_rare_value():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"r": rng.choice(list("abc"), 300), "x": rng.normal(size=300)})
    prep = TablePrep("onehot").fit(frame)
    names = prep.feature_names
    columns = [names.index(f"r={v}") for v in ("a", "b", "c", "__rare__")]
    served = prep.transform(pd.DataFrame({"r": ["never-seen", None, "b"], "x": [0.0] * 3}))
    # the bucket's weights were never trained: a value in it would read them
    np.testing.assert_array_equal(served[:, columns], [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]])
    absent = prep.transform(pd.DataFrame({"x": [0.0]}))
    np.testing.assert_array_equal(absent[:, columns], [[0, 0, 0, 0]])
    # a value rare in training filled the bucket, so unseen ones still go there
    rare = pd.concat([frame, pd.DataFrame({"r": ["d"], "x": [0.0]})], ignore_index=True)
    with_rare = TablePrep("onehot").fit(rare)
    served = with_rare.transform(pd.DataFrame({"r": ["never-seen"], "x": [0.0]}))
    assert served[0, with_rare.feature_names.index("r=__rare__")] == 1.0
    again = TablePrep.from_dict(json.loads(json.dumps(prep.to_dict())))
    np.testing.assert_array_equal(again.transform(pd.DataFrame({"x": [0.0]})), absent)


def test_a_target_scaler_maps_predictions_back_to_the_targets_units():
    y = np.array([120_000.0, 250_000.0, 990_000.0, 310_000.0])
    for log in (False, True):
        scaler = TargetScaler.fit(y, log=log)
        z = scaler.forward(y)
        assert abs(z.mean()) < 1e-9 and z.std() == pytest.approx(1.0)
        np.testing.assert_allclose(scaler.inverse(z), y, rtol=1e-9)
    with pytest.raises(ValueError, match="-5"):
        TargetScaler.fit(np.array([-5.0, 3.0]), log=True)
    # a far-out row's extrapolation stays finite, within the widened log range
    scaler = TargetScaler(**vars(TargetScaler.fit(y, log=True)))  # as a member's manifest
    far = scaler.inverse(np.array([1e3, -1e3]))
    widest = np.log(990_001 / 120_001)  # the training targets' log range
    assert np.isfinite(far).all()
    np.testing.assert_allclose(np.log1p(far), np.log1p([990_000, 120_000]) + [widest, -widest])


@pytest.fixture(scope="module")
def members_on_a_table(tmp_path_factory):
    """Every flat-row kind trained on the made table for both tasks, saved, then loaded and
    asked for predictions on awkward rows in one fresh process started elsewhere."""
    import keras

    frame, y_class, y_dollars = made_table()
    train, val = slice(0, 180), slice(180, None)
    root = tmp_path_factory.mktemp("table-members")
    cases, out = [], {}
    for name in TABLE_KINDS:
        entry = models.REGISTRY[name]
        for task, y in ((CLASSES, y_class), (REGRESSION, y_dollars)):
            if not entry.supports(task):
                continue
            keras.utils.set_random_seed(0)
            hparams = entry.check({}, task)
            trained = entry.train(
                None,
                task,
                hparams,
                (frame[train], y[train]),
                (frame[val], y[val]),
                TrainingOptions(epochs=2, batch_size=32),
                seed=0,
            )
            case = f"{name}-{task.kind}"
            folder = models.save_member(name, trained.member, root / case)
            keras.utils.set_random_seed(1)
            out[case] = {
                "val": trained.member.predict(frame[val], task),
                "awkward": trained.member.predict(awkward_rows(), task),
                "y_val": y[val],
            }
            cases.append([case, str(folder), task.kind, task.n_classes])
    awkward = root / "awkward.json"
    awkward.write_text(awkward_rows().to_json(orient="records"))
    script = (
        "import json, sys, keras, pandas as pd, models\n"
        "from models.base import Task\n"
        "keras.utils.set_random_seed(1)\n"
        "rows = pd.read_json(sys.argv[1], orient='records')\n"
        "print(json.dumps({c: models.load_member(f).predict(rows, Task(k, n)).tolist()\n"
        "                  for c, f, k, n in json.loads(sys.argv[2])}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(awkward), json.dumps(cases)],
        cwd=tmp_path_factory.mktemp("elsewhere"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    for case in out:
        out[case]["fresh"] = np.array(fresh[case])
    return out


@pytest.mark.parametrize("name", TABLE_KINDS)
def test_every_flat_kind_trains_on_raw_rows_and_serves_awkward_ones_in_a_fresh_process(
    name, members_on_a_table
):
    got = {k: v for k, v in members_on_a_table.items() if k.startswith(f"{name}-")}
    assert got
    for case, result in got.items():
        assert np.isfinite(result["awkward"]).all(), case
        np.testing.assert_allclose(result["fresh"], result["awkward"], rtol=1e-4, atol=1e-6)
        if case.endswith("regression"):
            # predictions come back in dollars, whatever scale the member learned in
            spread = float(np.std(result["y_val"]))
            rmse = float(np.sqrt(np.mean((result["val"] - result["y_val"]) ** 2)))
            assert 150_000 < float(np.mean(result["val"])) < 350_000, case
            assert rmse < 3 * spread, case


def test_neural_regressors_learn_a_standardised_target_in_dollars():
    """The same MLP on the same rows, with and without the target standardised: on a target
    in dollars the raw one stays far off, the standardised one learns."""
    frame, _, y = made_table(600, seed=1)
    rmse = {}
    for scaled in (True, False):
        entry = replace(models.REGISTRY["mlp"], scales_target=scaled)
        trained = entry.train(
            None,
            REGRESSION,
            entry.check({"depth": 2, "width": 32}, REGRESSION),
            (frame[:450], y[:450]),
            (frame[450:], y[450:]),
            TrainingOptions(epochs=30, batch_size=32),
            seed=0,
        )
        assert (trained.member.target is not None) == scaled
        pred = trained.member.predict(frame[450:], REGRESSION)
        rmse[scaled] = float(np.sqrt(np.mean((pred - y[450:]) ** 2)))
    assert rmse[True] < 0.7 * float(np.std(y[450:])), rmse
    assert rmse[True] < 0.5 * rmse[False], rmse


@pytest.mark.parametrize("log", [False, True])
def test_epoch_errors_of_a_standardised_target_are_reported_in_its_units(log):
    """The curves in MLflow and the final scores speak of the same units: RMSE per epoch in
    dollars (standardised units before), or in log1p units, named so, after a log target."""
    frame, _, y = made_table(300, seed=2)
    entry = models.REGISTRY["mlp"]
    reported = []
    trained = entry.train(
        None,
        REGRESSION,
        entry.check({"depth": 1, "width": 16}, REGRESSION),
        (frame[:240], y[:240]),
        (frame[240:], y[240:]),
        TrainingOptions(epochs=3, batch_size=32),
        seed=0,
        on_epoch=lambda epoch, logs: reported.append(dict(logs)),
        log_target=log,
    )
    last = reported[-1]
    name = "val_rmse_log1p" if log else "val_rmse"
    assert name in last and "val_rmse" not in (set(last) - {name}), last
    pred = trained.member.predict(frame[240:], REGRESSION)
    truth = np.log1p(y[240:]) if log else y[240:]
    served = np.log1p(pred) if log else pred
    # the last epoch's score is the served model's error on the same rows, in the same units
    assert last[name] == pytest.approx(float(np.sqrt(np.mean((served - truth) ** 2))), rel=0.05)
    # the member's saved history (history.json, its learning curves) says the same
    saved = errors_in_units(trained.member.target, trained.history)
    assert saved[name] == pytest.approx([epoch[name] for epoch in reported])


SERVE_RAW_ROWS = """
import sys, warnings, mlflow, numpy as np, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
rows = pd.read_csv(sys.argv[2]).drop(columns=[sys.argv[3]]).head(6)
rows.loc[0, "bill_length_mm"] = np.nan
rows.loc[1, "sex"] = None
rows.loc[2, "island"] = "Atlantis"          # a category no member saw
rows = rows[list(reversed(rows.columns))]   # columns in another order
pred = np.asarray(model.predict(rows))
assert pred.shape[0] == 6 and np.isfinite(pred).all(), pred
print("served", pred.shape, float(np.ravel(pred)[0]))
classes = (model.metadata.metadata or {}).get("classes")
print("classes", classes)
if classes:  # a classifier also names each row's most probable class
    labels = model.predict(rows, params={"output": "labels"})
    assert list(labels) == [classes[k] for k in pred.argmax(axis=1)], (labels, pred)
    print("labels", ",".join(sorted(set(labels))))
else:  # a regressor asked for labels says so (MLflow would drop an undeclared parameter)
    try:
        model.predict(rows, params={"output": "labels"})
    except Exception as err:
        assert "predicts values" in str(err), err
    else:
        raise AssertionError("a regressor served labels")
assert np.asarray(model.predict(rows.head(0))).shape[0] == 0  # no rows in, none out
assert np.asarray(model.predict(pd.DataFrame([]))).shape[0] == 0  # an empty list of records
# MLflow's "inputs" request: one row as a mapping of values, records with 0-d arrays
one = {k: (None if pd.isna(v) else v) for k, v in rows.iloc[1].items()}
np.testing.assert_allclose(np.asarray(model.predict(one), dtype=float), pred[1:2], rtol=1e-5)
records = [{k: np.asarray(v) for k, v in one.items()}]
np.testing.assert_allclose(np.asarray(model.predict(records), dtype=float), pred[1:2], rtol=1e-5)
# one row as a Series (frame.iloc[1]); a column named twice is refused in one line
row = np.asarray(model.predict(rows.iloc[1]), dtype=float)
np.testing.assert_allclose(row, pred[1:2], rtol=1e-5)
try:
    model.predict(pd.concat([rows, rows[["island"]]], axis=1))
except Exception as err:
    assert "names column(s) island more than once" in str(err), err
else:
    raise AssertionError("a column named twice was served")
# MLflow's scoring server: a CSV request reads (no input schema of columns of any type, which
# its CSV reader refuses), and a bad request gets the model's own line with a 400
import io, json
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server
assert model.metadata.get_input_schema() is None
assert set(model.metadata.metadata["columns"]) >= {"island", "bill_length_mm"}
frame = scoring_server.parse_csv_input(io.StringIO(rows.to_csv(index=False)), schema=None)
np.testing.assert_allclose(np.asarray(model.predict(frame), dtype=float), pred, rtol=1e-5)
split = json.loads(rows.to_json(orient="split", index=False))
body = json.dumps({"dataframe_split": split, "params": {"output": "bogus"}})
try:
    scoring_server.invocations(body, "application/json", model, None)
except MlflowException as err:
    assert err.get_http_status_code() == 400, err
    # the model's own line, not MLflow's echo of the request's rows (secrets included)
    assert err.message.startswith("params output='bogus': ") and "\\n" not in err.message, err
    assert json.loads(err.serialize_as_json())["message"] == err.message
else:
    raise AssertionError("a bad parameter was served")
with warnings.catch_warnings(record=True) as caught:  # a missing column is read as missing
    warnings.simplefilter("always")
    assert np.isfinite(np.asarray(model.predict(rows.drop(columns=["island"])))).all()
said = [str(w.message) for w in caught if "lacks 1 column(s)" in str(w.message)]
assert said and said[0].endswith("read as missing values: island"), said
with warnings.catch_warnings(record=True) as caught:  # a near miss is named, not read
    warnings.simplefilter("always")
    model.predict(rows.rename(columns={"island": "Island "}))
said = [str(w.message) for w in caught if "lacks 1 column(s)" in str(w.message)]
near = "(the input has 'Island ' for 'island': names must match exactly)"
assert said and said[0].endswith(near), said
odd = rows.astype({"bill_length_mm": object})
odd.loc[3, "bill_length_mm"] = "38 mm"  # text where the members read numbers
odd.loc[4, "bill_length_mm"] = "n/a"  # text standing for a missing value: not said
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert np.isfinite(np.asarray(model.predict(odd))).all()
said = [str(w.message) for w in caught]
assert any("bill_length_mm: 1 cell(s) such as '38 mm'" in w for w in said), said
try:  # a numpy array has no column names: say what to pass
    model.predict(rows.to_numpy())
except Exception as err:
    assert "a numpy array or a Series has no column names" in str(err), err
else:
    raise AssertionError("a numpy array was served")
try:  # no column the members know: one line naming theirs
    model.predict(pd.DataFrame({"Island": ["Dream"], "foo": [1.0]}))
except Exception as err:
    assert "none of the" in str(err) and "island, " in str(err), err
else:
    raise AssertionError("rows without a known column were served")
print("awkward inputs served")
"""


def serve_raw_rows(summary: dict, db: str, target: str, cwd) -> str:
    """The sweep's exported ensemble, loaded in a fresh process, predicts raw penguin rows
    with a missing number, a missing and an unseen category, columns in another order;
    returns what the script printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = db
    served = subprocess.run(
        [
            sys.executable,
            "-c",
            SERVE_RAW_ROWS,
            summary["ensemble"]["model_uri"],
            str(PENGUINS),
            target,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    assert "served" in served.stdout and "awkward inputs served" in served.stdout
    return served.stdout


@pytest.mark.slow
@pytest.mark.skipif(not PENGUINS.exists(), reason="no offline copy of the penguins table")
def test_the_tabular_experiment_classifies_penguins_and_serves_raw_rows(smoke_run, tmp_path):
    """The experiment's smoke run (test_experiments' own: the penguins species) serves."""
    from test_experiments import smoke_args

    run = smoke_run("tabular", *smoke_args("tabular"))
    assert run.summary["metric"] == "accuracy"
    assert [m["status"] for m in run.summary["members"]] == ["FINISHED"] * 10
    species = ["Adelie", "Chinstrap", "Gentoo"]  # the probability columns' order
    assert run.summary["data"]["classes"] == species
    printed = serve_raw_rows(run.summary, run.db, "species", tmp_path)
    assert f"classes {species}" in printed
    named = printed.split("labels ")[1].split()[0]
    assert named and set(named.split(",")) <= set(species)


@pytest.mark.slow
@pytest.mark.skipif(not PENGUINS.exists(), reason="no offline copy of the penguins table")
def test_the_tabular_experiment_regresses_penguin_mass_in_grams_and_serves_raw_rows(tmp_path):
    db = f"sqlite:///{tmp_path}/mlflow.db"
    done = run_cli(
        tmp_path,
        "+experiment=tabular",
        f"data.path={PENGUINS}",
        "data.target=body_mass_g",
        "training.epochs=15",
        "runner.folds=0",  # trained once (the bagged path: the smoke run above)
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(tmp_path / "out")
    assert summary["metric"] == "rmse"
    assert [m["status"] for m in summary["members"]] == ["FINISHED"] * 10
    assert "dropped 2 of 344 rows missing the target 'body_mass_g'" in done.stderr
    scores = {m["name"]: m["test_metric"] for m in summary["members"]}
    # in grams, as the members learned standardised targets: near the linear model, not 1.5-3x
    assert max(scores["mlp"], scores["selu"], scores["wide_deep"]) < 2 * scores["linear"]
    assert summary["data"]["classes"] is None
    assert "classes None" in serve_raw_rows(summary, db, "body_mass_g", tmp_path)


@pytest.mark.parametrize(
    "name", ["id", "user_id", "rownames", "Unnamed: 0", "PassengerId", "CustomerID", "order-id"]
)
def test_a_shuffled_row_number_named_like_an_id_is_dropped(name):
    rng = np.random.default_rng(0)
    rows = rng.permutation(np.arange(1, 201))[:120]  # a split keeps some row numbers
    frame = pd.DataFrame({name: rows, "x": rng.normal(size=120)})
    prep = TablePrep().fit(frame)
    assert name in prep.dropped and prep.feature_names == ("x",)
    assert TablePrep().fit(frame.rename(columns={name: "weight"})).feature_names[0] == "weight"
    assert TablePrep().fit(frame.rename(columns={name: "paid"})).feature_names[0] == "paid"


def test_ids_are_dropped_when_a_few_rows_are_duplicated():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "customer_id": rng.permutation(np.arange(10_001, 10_201)),
            "order_ref": [f"ORD-{i:06d}" for i in range(200)],
            "rank": np.arange(1, 201),
            "x": rng.normal(size=200),
        }
    )
    twice = pd.concat([frame, frame.iloc[:3]], ignore_index=True)  # three rows entered twice
    prep = TablePrep().fit(twice)
    assert set(prep.dropped) == {"customer_id", "order_ref", "rank"}
    assert prep.feature_names == ("x",)
    # a category repeated on a tenth of the rows is no ID
    kept = twice.assign(order_ref=[f"ORD-{i % 180:06d}" for i in range(203)])
    assert "order_ref" not in TablePrep().fit(kept).dropped


def test_a_text_column_of_numbers_with_placeholders_is_read_as_numbers():
    rng = np.random.default_rng(5)
    x = rng.normal(1000, 300, 400)
    text = [f"${v:,.2f}" for v in x]  # "$1,234.56"
    for i in range(0, 400, 25):
        text[i] = "?" if i % 50 else "unknown"
    prep = TablePrep("onehot").fit(pd.DataFrame({"price": text, "z": rng.normal(size=400)}))
    assert prep.feature_names == ("price", "price:missing", "z")
    assert "16 cell(s)" in prep.notes["price"] and "'?'" in prep.notes["price"]
    served = prep.transform(pd.DataFrame({"price": ["$12.50", "1,234", 99, "?"], "z": 0.0}))
    np.testing.assert_allclose(served[:3, 0], [12.5, 1234, 99])
    np.testing.assert_array_equal(served[:, 1], [0, 0, 0, 1])
    signs = ["$-5", "-$5", "12.5%", "+-5"]  # a sign after the symbol, a percent; two signs: not
    served = prep.transform(pd.DataFrame({"price": signs, "z": 0.0}))
    np.testing.assert_array_equal(served[:, 1], [0, 0, 0, 1])
    np.testing.assert_allclose(served[:3, 0], [-5, -5, 12.5])
    assert prep.unreadable(pd.DataFrame({"price": ["?", "7", None, "?"]})) == {"price": (2, "?")}
    # a category column reads such text as its missing category, as a missing cell
    kinds = TablePrep("onehot").fit(pd.DataFrame({"k": ["a", "b", None] * 20}))
    served = kinds.transform(pd.DataFrame({"k": [None, "n/a", "NaN", "zzz"]}))
    np.testing.assert_array_equal(served[1], served[0])
    np.testing.assert_array_equal(served[2], served[0])
    assert not np.array_equal(served[3], served[0])  # an unseen category is rare, not missing
    # text that stands for a missing value (as pandas reads a CSV) is no unreadable number
    blanks = pd.DataFrame({"price": ["n/a", "", "NaN", " null ", "7"]})
    assert prep.unreadable(blanks) == {}
    assert TablePrep().fit(pd.DataFrame({"v": x})).unreadable(blanks.set_axis(["v"], axis=1)) == {}
    # a column of numbers (not text) reads no formatted text: "1,234" may be 1.234 there
    plain = TablePrep().fit(pd.DataFrame({"v": x, "z": rng.normal(size=400)}))
    assert plain.unreadable(pd.DataFrame({"v": ["1,234", "7"]})) == {"v": (1, "1,234")}
    # members of one ensemble share what was checked: a column read the same way is parsed
    # once, one read another way (formatted text) again
    checked: set = set()
    assert plain.unreadable(pd.DataFrame({"v": ["x"]}), checked) == {"v": (1, "x")}
    assert plain.unreadable(pd.DataFrame({"v": ["x"]}), checked) == {}
    priced = TablePrep("onehot").fit(pd.DataFrame({"v": text, "z": rng.normal(size=400)}))
    assert priced.unreadable(pd.DataFrame({"v": ["x"]}), checked) == {"v": (1, "x")}
    # a distinct code of digits on every row is an ID, as any distinct text
    ids = [f"{i:08d}" for i in rng.permutation(1000)[:400]]
    coded = TablePrep().fit(pd.DataFrame({"customer": ids, "z": rng.normal(size=400)}))
    assert coded.dropped == {"customer": "an ID (distinct text on every row)"}
    # a column of codes and words in equal measure stays categories
    codes = TablePrep().fit(pd.DataFrame({"c": rng.choice(["1", "2", "n/a"], 300)}))
    assert codes.columns[0].kind == "category"


def test_dates_far_in_the_future_are_read_and_ratings_are_not_dates():
    rng = np.random.default_rng(6)
    until = rng.choice(["2024-01-31", "2025-06-30", "9999-12-31"], 100)
    rating = rng.choice(["3/5", "4/5", "5/5", "1/5"], 100)
    prep = TablePrep("onehot").fit(pd.DataFrame({"until": until, "rating": rating}))
    assert [c.kind for c in prep.columns] == ["date", "category"]
    got = prep.transform(pd.DataFrame({"until": ["9999-12-31", "3000-01-01"], "rating": "3/5"}))
    if int(pd.__version__.split(".")[0]) >= 3:  # pandas 2 holds no date past 2262: missing
        assert got[0, prep.feature_names.index("until:year")] == 9999
        assert got[1, prep.feature_names.index("until:year")] == 3000
    assert np.isfinite(got).all()


def test_a_text_column_of_numbers_matches_them_served_as_numbers():
    # a CSV column mixing codes and words is text; a user's frame may carry the codes as numbers
    rng = np.random.default_rng(4)
    codes = rng.choice(["41", "7", "n/a"], 200)
    prep = TablePrep("onehot").fit(pd.DataFrame({"code": codes, "x": rng.normal(size=200)}))
    as_text = prep.transform(pd.DataFrame({"code": ["41", "7"], "x": [0.0, 0.0]}))
    for served in ([41.0, 7.0], [41, 7], np.array([41, 7], dtype=np.int64)):
        got = prep.transform(pd.DataFrame({"code": served, "x": [0.0, 0.0]}))
        np.testing.assert_array_equal(got, as_text)
    assert as_text[:, prep.feature_names.index("code=__rare__")].sum() == 0
    # and text spelled as floats ('1.0') still finds a served 1.0, or 1
    prep = TablePrep("onehot").fit(
        pd.DataFrame({"code": rng.choice(["1.0", "2.0", "n/a"], 200), "x": rng.normal(size=200)})
    )
    as_text = prep.transform(pd.DataFrame({"code": ["1.0", "2.0"], "x": [0.0, 0.0]}))
    for served in ([1.0, 2.0], [1, 2]):
        got = prep.transform(pd.DataFrame({"code": served, "x": [0.0, 0.0]}))
        np.testing.assert_array_equal(got, as_text)


def test_a_category_typed_with_stray_spaces_finds_its_own():
    rng = np.random.default_rng(5)
    species = rng.choice(["Adelie", "Gentoo", "Chinstrap"], 200)
    for encoding in ("onehot", "ordinal"):
        prep = TablePrep(encoding).fit(pd.DataFrame({"species": species}))
        clean = prep.transform(pd.DataFrame({"species": ["Adelie", "Gentoo"]}))
        typed = prep.transform(pd.DataFrame({"species": [" Adelie", "Gentoo  "]}))
        np.testing.assert_array_equal(typed, clean)
    # a category unseen however it is spaced stays rare
    seen_rare = pd.DataFrame({"species": [*species, "Emperor"]})
    prep = TablePrep("onehot").fit(seen_rare)
    rare = prep.transform(pd.DataFrame({"species": [" Macaroni "]}))
    assert rare[0, prep.feature_names.index("species=__rare__")] == 1.0
    # empty or blank text, as JSON clients send a missing value, is missing
    gaps = np.where(np.arange(200) % 10 == 0, None, species)
    for encoding in ("onehot", "ordinal"):
        prep = TablePrep(encoding).fit(pd.DataFrame({"species": gaps}))
        served = prep.transform(pd.DataFrame({"species": [None, "", "  "]}))
        np.testing.assert_array_equal(served[1:], served[[0, 0]])


def test_numbers_stored_as_numbers_read_as_the_same_numbers_stored_as_objects():
    """Columns a frame stores as numbers are read in one conversion (a served row of a wide
    table); cell by cell, as objects, they must read the same, missing and inf included."""
    rng = np.random.default_rng(6)
    n = 120
    train = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": pd.array(rng.integers(0, 9, n), dtype="Int64"),
            "c": rng.choice(["x", "y"], n),
            "d": rng.normal(size=n).astype(np.float32),
        }
    )
    train.loc[::7, "a"] = np.nan
    prep = TablePrep("onehot").fit(train)
    served = pd.DataFrame(
        {
            "d": np.array([1.5, np.nan, 2.0, 0.0], dtype=np.float32),
            "a": [np.inf, np.nan, 1e39, -2.0],
            "b": pd.array([1, None, 3, 4], dtype="Int64"),
            "c": ["x", None, "z", "y"],
        },
        index=[10, 3, 7, 1],
    )
    as_objects = served.astype(object)
    np.testing.assert_array_equal(prep.transform(served), prep.transform(as_objects))
    assert prep.unreadable(served) == prep.unreadable(as_objects) == {"a": (2, "inf")}


def test_dates_with_a_time_zone_are_read_in_the_training_rows_zone_however_served():
    when = pd.Series(pd.date_range("2024-01-01", periods=60, freq="D", tz="Europe/Paris"))
    prep = TablePrep().fit(pd.DataFrame({"when": when, "x": np.arange(60.0)}))
    prep = TablePrep.from_dict(json.loads(json.dumps(prep.to_dict())))  # as a served member
    parts = [prep.feature_names.index(f"when:{p}") for p in ("year", "month", "day", "hour")]
    naive = when[:1].dt.tz_localize(None)  # as a CSV holds it: Paris time without its zone
    for served in (
        when[:1],
        when[:1].dt.tz_convert("UTC"),
        when[:1].astype(str),
        naive,
        naive.astype(str),
        naive.astype(object),
        pd.Series([datetime.date(2024, 1, 1)]),  # a date cell: midnight in Paris too
    ):
        got = prep.transform(pd.DataFrame({"when": served, "x": [0.0]}))
        # Paris midnight: not 23:00 the day before, nor (zone-free ones read as UTC) 01:00
        assert got[0, parts].tolist() == [2024, 1, 1, 0], served
    # a time the clocks skipped (02:30 on 31 March) moves forward, never missing
    skipped = pd.DataFrame({"when": ["2024-03-31 02:30"], "x": [0.0]})
    assert prep.transform(skipped)[0, parts].tolist() == [2024, 3, 31, 3]


@pytest.mark.parametrize(
    "written, dayfirst",
    [("%d.%m.%Y", True), ("%m/%d/%Y", False), ("%d/%m/%Y", True), ("%Y-%m-%d", False)],
)
def test_dates_with_the_year_last_read_day_or_month_first_for_the_whole_column(written, dayfirst):
    days = pd.Series(pd.date_range("2020-01-01", periods=60, freq="D"))
    prep = TablePrep().fit(pd.DataFrame({"d": days.dt.strftime(written), "x": np.arange(60.0)}))
    prep = TablePrep.from_dict(json.loads(json.dumps(prep.to_dict())))  # as a served member
    assert prep.columns[0].dayfirst is dayfirst
    month, day = (prep.feature_names.index(f"d:{p}") for p in ("month", "day"))
    # 02.01.2020 is the 2nd of January like 13.01.2020 is the 13th, served in any spelling
    served = pd.DataFrame({"d": [*days.dt.strftime(written), "2020-02-10", days[40]], "x": 0.0})
    got = prep.transform(served)
    assert got[:60, month].tolist() == days.dt.month.tolist()
    assert got[:60, day].tolist() == days.dt.day.tolist()
    assert got[60:, [month, day]].tolist() == [[2, 10], [2, 10]]  # ISO text, a Timestamp


def test_numbers_past_float32_range_are_read_as_missing_not_inf():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"sqft": rng.normal(1500, 300, 200), "z": rng.normal(size=200)})
    frame.loc[3, "sqft"] = 1e39  # finite in float64, inf in the members' float32 rows
    prep = TablePrep().fit(frame)
    assert np.isfinite(prep.transform(frame)).all()
    served = prep.transform(pd.DataFrame({"sqft": [1e300, -np.inf, 5.0], "z": 0.0}))
    assert np.isfinite(served).all() and served[2, 0] == 5.0
    np.testing.assert_allclose(served[:2, 0], prep.columns[0].fill[0])
    # and a served model says so, as of text it cannot read
    said = prep.unreadable(pd.DataFrame({"sqft": [1e300, -np.inf, 5.0, np.nan], "z": 0.0}))
    assert said == {"sqft": (2, "1e+300")}


def test_numbers_in_a_date_column_are_times_since_1970_in_the_unit_their_size_says():
    """pandas writes dates to JSON as milliseconds since 1970: a served date column of
    numbers is read as those dates (seconds and nanoseconds too), not as nanoseconds."""
    rng = np.random.default_rng(4)
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, 300), unit="D")
    frame = pd.DataFrame({"when": days.strftime("%Y-%m-%d %H:%M"), "z": rng.normal(size=300)})
    prep = TablePrep().fit(frame)
    assert prep.columns[0].kind == "date"
    as_text = prep.transform(frame.head(3))
    stamps = pd.to_datetime(frame["when"].head(3), utc=True)
    ms = json.loads(frame.head(3).assign(when=stamps).to_json(orient="records"))
    assert isinstance(ms[0]["when"], int) and ms[0]["when"] > 1e12  # milliseconds
    mixed = pd.Series([ms[0]["when"], 10**20, "2021-05-01", None], index=[7, 7, 8, 8])
    read = models.tabular._to_dates(mixed)  # duplicate labels, an int past float64's range
    assert list(read.isna()) == [False, True, False, True] and read.iloc[0].year >= 2020
    for served in (
        pd.DataFrame(ms),
        frame.head(3).assign(when=stamps.dt.as_unit("s").astype("int64")),  # seconds
        frame.head(3).assign(when=stamps.dt.as_unit("ns").astype("int64")),  # nanoseconds
    ):
        assert prep.unreadable(served) == {}
        np.testing.assert_allclose(prep.transform(served), as_text)


@pytest.mark.parametrize(
    "cells",
    [
        lambda d: d.dt.strftime("%d-%b-%Y"),  # 19-Aug-2022
        lambda d: d.dt.strftime("%b %d, %Y"),  # Aug 19, 2022
        lambda d: d.dt.strftime("%d %B %Y"),  # 19 August 2022
        lambda d: d.dt.strftime("%d-%b-%y"),  # 19-Aug-22
        lambda d: d.dt.strftime("%Y-%m-%d").mask(d.index % 40 == 0, "unknown"),  # a placeholder
        lambda d: pd.Series(list(d.dt.date), dtype=object),  # Parquet's DATE: datetime.date
    ],
)
def test_dates_with_named_months_placeholders_or_as_date_objects_are_dates(cells):
    days = pd.Series(pd.date_range("2022-01-01", periods=300, freq="D"))
    prep = TablePrep().fit(pd.DataFrame({"d": cells(days), "x": np.arange(300.0)}))
    prep = TablePrep.from_dict(json.loads(json.dumps(prep.to_dict())))  # as a served member
    assert prep.columns[0].kind == "date", prep.feature_names
    month = prep.feature_names.index("d:month")
    got = prep.transform(pd.DataFrame({"d": cells(days), "x": 0.0}))[:, month]
    dated = cells(days) != "unknown"
    np.testing.assert_array_equal(got[dated], days.dt.month[dated])
    served = prep.transform(
        pd.DataFrame({"d": [datetime.date(2022, 8, 19), "19-Aug-2022", "2022-08-19"], "x": 0.0})
    )
    assert served[:, month].tolist() == [8, 8, 8]


def test_a_column_with_sentinels_near_float32s_largest_trains_a_keras_member():
    """Fourteen cells of 3e38 made the float32 mean and variance inf and every Keras member's
    loss NaN in its first epoch."""
    import models
    from models.base import Task
    from models.tabular import TablePrep
    from models.training import TrainingOptions

    rng = np.random.default_rng(0)
    reading = rng.normal(size=600)
    reading[::43] = 3.0e38
    frame = pd.DataFrame({"reading": reading, "z": rng.normal(size=600)})
    y = (frame["z"] > 0).astype(np.int64).to_numpy()
    prep = TablePrep().fit(frame)
    spec = prep.input_spec(prep.transform(frame))
    assert np.isfinite(spec.mean).all() and np.isfinite(spec.variance).all()
    assert (np.asarray(spec.variance, dtype=np.float32) < np.inf).all()
    task = Task("classification", n_classes=2)
    trained = models.get("mlp").train(
        spec, task, {"depth": 1, "width": 8}, (frame, y), (frame, y), TrainingOptions(epochs=2)
    )
    assert np.isfinite(trained.history["loss"]).all(), trained.history


def test_dates_served_with_the_year_last_to_a_column_trained_on_iso_dates_read_alike():
    """Trained on ISO dates, served 28.11.2025 and 04.05.2024 in one request: the first read
    day first, the second as 5 April, without a word."""
    days = pd.Series(pd.date_range("2023-01-01", periods=60, freq="7D"))
    prep = TablePrep().fit(pd.DataFrame({"d": days.dt.strftime("%Y-%m-%d"), "x": 1.0}))
    prep = TablePrep.from_dict(json.loads(json.dumps(prep.to_dict())))
    month, day = (prep.feature_names.index(f"d:{p}") for p in ("month", "day"))

    def read(*cells: str) -> list[list[float]]:
        return prep.transform(pd.DataFrame({"d": list(cells), "x": 1.0}))[:, [month, day]].tolist()

    assert read("28.11.2025", "04.05.2024") == [[11, 28], [5, 4]]
    assert read("04.05.2024") == [[5, 4]]  # dots: day first, as the README says
    assert read("04/05/2024") == [[4, 5]]  # slashes without evidence: month first
    assert read("04/05/2024", "04/25/2024") == [[4, 5], [4, 25]]
    assert read("2024-05-04") == [[5, 4]]
    # a saved column of an older version (no year_last) reads as it did
    old = prep.to_dict()
    for column in old["columns"]:
        column.pop("year_last", None)
    assert TablePrep.from_dict(old).columns[0].year_last is True


def test_dates_and_durations_served_to_a_column_of_numbers_are_missing_and_said():
    """A datetime became 1.58e15 (its nanoseconds) and NaT -9.2e18, with no warning."""
    rng = np.random.default_rng(0)
    prep = TablePrep().fit(pd.DataFrame({"num": rng.normal(size=100)}))
    fill = prep.columns[0].fill[0]
    for cells, numbers, unread in (
        (pd.to_datetime(["2020-01-01", None, "2021-01-01"]), [fill] * 3, 2),
        (pd.to_timedelta([1, 2, None], unit="D"), [fill] * 3, 2),
        (pd.Series([pd.Timestamp("2020-01-01"), 3.5, None], dtype=object), [fill, 3.5, fill], 1),
    ):
        served = pd.DataFrame({"num": cells})
        np.testing.assert_allclose(prep.transform(served)[:, 0], numbers, rtol=1e-6)
        assert prep.unreadable(served)["num"][0] == unread


def test_booleans_served_to_a_column_of_numbers_other_than_0_and_1_are_missing_and_said():
    """A year column read a served True (or "true") as the year 1: a prediction ten times
    the target's range, silently. A column of 0s and 1s still reads booleans as 1 and 0."""
    frame = pd.DataFrame(
        {
            "year": [2007, 2008, 2009, 2008] * 5,
            "member": [0, 1, 1, 0] * 5,
            "flag": [True, False, True, True] * 5,
        }
    )
    prep = TablePrep().fit(frame)
    prep = TablePrep.from_dict(json.loads(json.dumps(prep.to_dict())))  # as a served model
    served = pd.DataFrame({"year": [True, "false", 2009], "member": [True, "false", 1]})
    served["flag"] = ["true", False, True]
    X = prep.transform(served)
    year = prep.feature_names.index("year")
    assert X[:, year].tolist() == [2008.0, 2008.0, 2009.0]  # the training median, not 1 and 0
    assert X[:, prep.feature_names.index("member")].tolist() == [1.0, 0.0, 1.0]
    assert X[:, prep.feature_names.index("flag")].tolist() == [1.0, 0.0, 1.0]
    assert prep.unreadable(served) == {"year": (2, "True")}
    # two folds' members that read the column apart: the one that reads no booleans says so
    zero_one = TablePrep().fit(pd.DataFrame({"n": [0, 1, 1, 0] * 3}))
    counts = TablePrep().fit(pd.DataFrame({"n": [0, 1, 2, 0] * 3}))
    checked: set = set()
    said = {**zero_one.unreadable(pd.DataFrame({"n": [True]}), checked)}
    said.update(counts.unreadable(pd.DataFrame({"n": [True]}), checked))
    assert said == {"n": (1, "True")}
    legacy = prep.to_dict()  # a member saved before: booleans read as numbers, as they were
    for column in legacy["columns"]:
        del column["bools"]
    assert TablePrep.from_dict(legacy).transform(served)[0, year] == 1.0


def test_given_the_target_other_members_read_a_wide_text_column_by_its_mean_target():
    """Panel data keyed by a state for a linear model: its share of the rows says nothing (all
    alike), its mean target says most. A training row's encoding comes from the folds that
    do not hold it, so a member cannot read its own target back; served rows get the
    encodings of all training rows, unseen values the overall mean."""
    rng = np.random.default_rng(0)
    states = [f"state{k:02d}" for k in range(51)]
    effect = rng.normal(size=51) * 10
    frame = pd.DataFrame({"state": np.repeat(states, 12), "year": np.tile(np.arange(12), 51)})
    y = np.repeat(effect, 12) + rng.normal(size=len(frame))
    prep = TablePrep("onehot")
    X = prep.fit_transform(frame, y)
    (state, _) = prep.columns
    assert state.kind == "target" and prep.feature_names == ("state", "year")
    assert "their mean target for others" in prep.notes["state"]
    served = prep.transform(frame)
    assert np.corrcoef(X[:, 0], y)[0, 1] > 0.95  # it encodes the state's effect
    assert not np.allclose(X[:, 0], served[:, 0])  # cross-fitted, not the served encodings
    assert np.allclose(prep.fit_transform(frame, y), X)  # the same folds every time
    new = prep.transform(pd.DataFrame({"state": ["state07", "nowhere", None], "year": 1}))
    assert new[0, 0] == pytest.approx(effect[7], abs=1.0)
    assert new[1, 0] == new[2, 0] == pytest.approx(y.mean())  # unseen, missing: the mean
    again = TablePrep.from_dict(json.loads(json.dumps(prep.to_dict())))
    np.testing.assert_array_equal(again.transform(frame), served)
    # classes: a share per class (a student's probabilities encode by their likeliest class)
    classes = np.digitize(np.repeat(effect, 12), [-5.0, 5.0])
    shares = TablePrep("onehot").fit_transform(frame, classes, classification=True)
    soft = TablePrep("onehot").fit_transform(frame, np.eye(3)[classes], classification=True)
    assert shares.shape == soft.shape == (len(frame), 4)
    np.testing.assert_allclose(shares[:, :3].sum(axis=1), 1.0, atol=1e-6)
    # trees still code it; no target, or a target of one class: shares of the rows
    assert TablePrep("ordinal").fit(frame, y).columns[0].kind == "category"
    assert TablePrep("onehot").fit(frame).columns[0].kind == "frequency"
    one = TablePrep("onehot").fit(frame, np.zeros(len(frame), int), classification=True)
    assert one.columns[0].kind == "frequency"
    # a categorical column (as a Parquet file gives one) trains and serves as text does
    as_categories = frame.astype({"state": "category"})
    unused = as_categories["state"].cat.add_categories([f"gone{k}" for k in range(40)])
    with_unused = TablePrep("onehot").fit(as_categories.assign(state=unused), y)
    assert "text of 51 values" in with_unused.notes["state"]  # the values rows hold
    np.testing.assert_array_equal(TablePrep("onehot").fit_transform(as_categories, y), X)
    np.testing.assert_array_equal(prep.transform(as_categories), served)


def test_a_log_target_member_reads_wide_text_by_its_mean_target_in_the_units_it_learns():
    """With data.log_target the member learns log1p(y) standardised: the encoding in dollars
    (0 to 1,280 on a skewed target) dwarfed every other feature of a k-NN or linear member."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"shop": rng.choice([f"s{k}" for k in range(60)], 900)})
    frame["x"] = rng.normal(size=len(frame))
    y = np.expm1(rng.normal(5.0, 1.5, size=len(frame)))
    task = Task("regression")
    trained = models.get("linear").train(
        None, task, {}, (frame, y), (frame, y), TrainingOptions(), log_target=True
    )
    (shop, _) = trained.member.prep.columns
    assert shop.kind == "target"
    assert abs(shop.prior[0]) < 1e-6  # the mean of the standardised log1p target
    values = np.array([v[0] for v in shop.targets.values()])
    assert np.abs(values).max() < 3.0


def test_trees_read_a_wide_text_column_by_its_values_and_others_by_their_shares():
    """Panel data keyed by a state: 51 values, each on as many rows. Shares of rows are all
    alike there, so a tree read nothing (test RMSE 303 on a table where codes give 43)."""
    rng = np.random.default_rng(0)
    states = [f"state{k:02d}" for k in range(51)]
    frame = pd.DataFrame({"state": np.repeat(states, 12), "year": np.tile(np.arange(12), 51)})
    trees, others = TablePrep("ordinal").fit(frame), TablePrep("onehot").fit(frame)
    (state, _) = trees.columns
    assert state.kind == "category" and len(state.categories) == 52  # every state, and rare
    assert others.columns[0].kind == "frequency" and others.transform(frame).shape[1] == 2
    assert "text of 51 values" in trees.notes["state"]
    coded = trees.transform(pd.DataFrame({"state": ["state07", "nowhere"], "year": [1, 2]}))
    assert coded[0, 0] == states.index("state07") and coded[1, 0] == 51  # unseen: rare
    # values mostly too rare to learn from (under half the rows seen 5 times): shares
    names = pd.DataFrame({"who": [f"n{k}" for k in range(300)] + ["common"] * 100, "x": 0.0})
    names["x"] = rng.normal(size=len(names))
    rare = TablePrep("ordinal").fit(names)
    assert rare.columns[0].kind == "frequency"
    assert "their shares of the rows (too many values, or too rare" in rare.notes["who"]
    # given the target, trees read such a column by its mean target, as other members do
    y = rng.normal(size=len(names)) + (names["who"] == "common") * 3.0
    rare = TablePrep("ordinal").fit(names, y.to_numpy())
    assert rare.columns[0].kind == "target"
    assert "their mean target (too many values, or too rare" in rare.notes["who"]
    assert "their mean target for others" in rare.notes["who"]


def test_a_prep_used_before_fit_or_fitted_on_text_labels_says_so():
    """transform before fit returned (rows, 0) zeros; text class labels failed with int()'s
    'invalid literal' message."""
    from models.tabular import TablePrep

    frame = pd.DataFrame({"a": [1.0, 2.0, None, 4.0] * 10, "b": list("xyzw") * 10})
    with pytest.raises(RuntimeError, match="TablePrep is not fitted"):
        TablePrep().transform(frame)
    labels = np.array(["Adelie", "Gentoo"] * 20)
    for classification in (True, False):
        with pytest.raises(ValueError, match=r"the target holds 'Adelie': give class ids 0..K-1"):
            TablePrep().fit(frame, labels, classification)
    assert TablePrep().fit(frame, np.arange(40) % 2, True).transform(frame).shape[0] == 40


def test_a_date_written_as_a_number_is_read_as_the_same_digits_in_text():
    """A request whose date cells were all 20070913 (JSON numbers, or a CSV pandas typed as
    integers) read them as seconds since 1970 (21 August 1970), while the same row among
    text dates read 13 September 2007: the prediction depended on the other rows."""
    from models.tabular import TablePrep

    dates = pd.date_range("2006-01-01", periods=60, freq="11D").strftime("%d.%m.%Y")
    frame = pd.DataFrame({"date": list(dates), "x": np.arange(60.0)})
    prep = TablePrep().fit(frame)
    as_text = prep.transform(pd.DataFrame({"date": ["13.09.2007", "2007"], "x": [1.0, 1.0]}))
    as_numbers = prep.transform(pd.DataFrame({"date": [20070913, 2007], "x": [1.0, 1.0]}))
    np.testing.assert_allclose(as_numbers, as_text)
    alone = prep.transform(pd.DataFrame({"date": [20070913], "x": [1.0]}))
    np.testing.assert_allclose(alone, as_text[:1])
