"""Dataset loading and splitting: seeded, stratified, fingerprinted."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT, SHARED_DATA
from models.tabular import TablePrep
from runner.data import LOADERS, bagged, load
from runner.spec import DataSpec


def shared(folder: str) -> Path:
    """A folder of the offline dataset copies in ../shared/data, or skip the test."""
    path = SHARED_DATA / folder
    if not path.is_dir():
        pytest.skip(f"offline dataset copy {path} is absent (see ../shared/data/README.md)")
    return path


def one_line_error(spec: DataSpec, *fragments: str) -> str:
    """Load ``spec``, expecting a one-line ValueError that contains every fragment."""
    with pytest.raises(ValueError) as err:
        load(spec)
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ------------------------------------------------------------------------------- digits


def test_digits_split_sizes_and_disjointness():
    d = load(DataSpec("digits", 0.2, 0.2, 0))
    sizes = d.sizes()
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == pytest.approx(0.2 * 1797, abs=1)
    assert sizes["val"] == pytest.approx(0.2 * 1797, abs=1)
    rows = {s: {r.tobytes() for r in X} for s, X in (("tr", d.X_train), ("te", d.X_test))}
    # digits has a few duplicate images; the splits share no more than those
    assert len(rows["tr"] & rows["te"]) < 5
    assert d.input_spec.image_shape == (8, 8, 1) and d.task.n_classes == 10


def test_split_is_stratified():
    d = load(DataSpec("digits", 0.2, 0.2, 0))
    train = np.bincount(d.y_train) / len(d.y_train)
    test = np.bincount(d.y_test) / len(d.y_test)
    assert np.abs(train - test).max() < 0.01


def test_same_seed_same_fingerprint_other_seed_other_fingerprint():
    a, b, c = (
        load(DataSpec("digits", 0.2, 0.2, 0)),
        load(DataSpec("digits", 0.2, 0.2, 0)),
        load(DataSpec("digits", 0.2, 0.2, 1)),
    )
    assert a.fingerprint == b.fingerprint != c.fingerprint
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert load(DataSpec("digits", 0.25, 0.2, 0)).fingerprint != a.fingerprint


def test_a_csv_loads_as_raw_rows_and_a_members_prep_drops_a_constant_column(tmp_path):
    rows = "\n".join(f"{2 * i},7,{i % 3}" for i in range(60))
    (tmp_path / "t.csv").write_text("x,constant,y\n" + rows + "\n")
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(tmp_path / "t.csv"), target="y"))
    assert list(d.X_train.columns) == ["x", "constant"]  # raw rows: members encode them
    prep = TablePrep().fit(d.X_train)
    assert prep.dropped == {"constant": "constant in the training rows"}
    spec = prep.input_spec(prep.transform(d.X_train))
    assert spec.feature_names == ("x",) and spec.variance[0] > 1.0


def test_images_are_standardised_with_one_mean_and_variance_for_every_pixel():
    d = load(DataSpec("digits", 0.2, 0.2, 0))
    assert np.unique(d.input_spec.mean).size == 1 and np.unique(d.input_spec.variance).size == 1
    assert d.input_spec.variance[0] == pytest.approx(d.X_train.var())


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(
        ValueError,
        match=r"unknown dataset 'mnist3d'; known: california_housing, csv, digits, fashion_mnist",
    ):
        load(DataSpec("mnist3d"))
    assert {"digits", "fashion_mnist", "california_housing", "csv"} <= set(LOADERS)


def test_importing_the_data_module_does_not_import_tensorflow():
    code = "import runner.data, sys; assert 'tensorflow' not in sys.modules, 'tensorflow'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# -------------------------------------------------------------------- classes, max_rows


def test_classes_keeps_those_rows_relabelled_in_list_order():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    d = load(DataSpec("digits", 0.2, 0.2, 0, classes=(8, 3)))
    assert d.task.n_classes == 2 and d.task.labels == ("8", "3")  # what ids 0 and 1 stand for
    y = np.concatenate([d.y_train, d.y_val, d.y_test])
    X = np.concatenate([d.X_train, d.X_val, d.X_test])
    assert set(np.unique(y)) == {0, 1}
    assert len(y) == int(np.sum(bunch.target == 8) + np.sum(bunch.target == 3))
    eights = {r.astype(np.float32).tobytes() for r in bunch.data[bunch.target == 8]}
    assert all(r.tobytes() in eights for r in X[y == 0])  # label 0 is the first listed class


def test_a_task_names_each_class_once_or_not_at_all():
    from models.base import Task

    assert Task("classification", 2, ("no", "yes")).labels == ("no", "yes")
    with pytest.raises(ValueError, match="labels name each of n_classes=3 classes"):
        Task("classification", 3, ("no", "yes"))
    with pytest.raises(ValueError, match="for a regression task"):
        Task("regression", None, ("no", "yes"))


def test_classes_must_name_existing_classes():
    one_line_error(DataSpec("digits", classes=(3, 12)), "data.classes", "[3, 12]", "0..9")


def test_max_rows_is_a_stratified_seeded_subsample_before_splitting():
    full = load(DataSpec("digits", 0.2, 0.2, 0))
    d = load(DataSpec("digits", 0.2, 0.2, 0, max_rows=500))
    assert sum(d.sizes().values()) == 500
    y_full = np.concatenate([full.y_train, full.y_val, full.y_test])
    y = np.concatenate([d.y_train, d.y_val, d.y_test])
    # each class keeps its share: within one row of the exact proportion
    assert np.abs(np.bincount(y) - np.bincount(y_full) * 500 / 1797).max() < 1
    again = load(DataSpec("digits", 0.2, 0.2, 0, max_rows=500))
    other_seed = load(DataSpec("digits", 0.2, 0.2, 1, max_rows=500))
    np.testing.assert_array_equal(d.X_test, again.X_test)
    assert not np.array_equal(d.X_train, other_seed.X_train)


def test_max_rows_too_small_to_split_fails_with_one_line():
    one_line_error(DataSpec("digits", 0.2, 0.2, 0, max_rows=10), "digits", "data.max_rows")


def test_fingerprint_changes_with_classes_and_max_rows():
    prints = {
        load(DataSpec("digits", 0.2, 0.2, 0, **kw)).fingerprint
        for kw in (
            {},
            {"classes": (0, 1)},
            {"classes": (1, 0)},
            {"classes": (0, 2)},
            {"max_rows": 500},
            {"max_rows": 600},
            {"classes": (0, 1), "max_rows": 100},
        )
    }
    assert len(prints) == 7


# ------------------------------------------------------------------------ Fashion-MNIST

FASHION_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file."""
    dims = np.asarray(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, array.ndim]) + dims + array.astype(np.uint8).tobytes())


def fake_fashion(folder: Path, n_train: int = 200, n_test: int = 50) -> Path:
    """Four small IDX files shaped like Fashion-MNIST's; labels cycle through 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return folder


@pytest.fixture(scope="module")
def fashion():
    """The real Fashion-MNIST, loaded once."""
    folder = shared("fashion-mnist")
    return folder, load(DataSpec("fashion_mnist", 0.2, 0.2, 0, path=str(folder)))


def test_fashion_mnist_shapes_and_official_test_split(fashion):
    folder, d = fashion
    assert d.sizes() == {"train": 48000, "val": 12000, "test": 10000}
    assert d.X_train.shape == (48000, 784) and d.X_train.dtype == np.float32
    assert d.X_train.min() == 0 and d.X_train.max() == 255  # raw pixels, not rescaled
    assert d.task.n_classes == 10 and d.input_spec.image_shape == (28, 28, 1)
    assert np.all(np.bincount(d.y_test) == 1000)
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        official = np.frombuffer(f.read(), np.uint8, offset=16).reshape(10000, 784)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    np.testing.assert_array_equal(d.X_test, official.astype(np.float32))
    np.testing.assert_array_equal(d.y_test, labels)


def test_fashion_mnist_classes_and_max_rows_on_the_real_files(fashion):
    folder, full = fashion
    d = load(DataSpec("fashion_mnist", 0.2, 0.2, 0, path=str(folder), classes=(0, 6), max_rows=700))
    assert d.task.n_classes == 2 and sum(d.sizes().values()) == 700
    assert d.task.labels == ("T-shirt/top", "Shirt")
    assert d.sizes()["test"] == 100  # 14,000 of 2 x 7,000 rows are test: 1/7 of 700
    official = {r.tobytes() for r, y in zip(full.X_test, full.y_test, strict=True) if y in (0, 6)}
    assert all(r.tobytes() in official for r in d.X_test)
    assert d.fingerprint != full.fingerprint


def test_fashion_mnist_found_in_the_keras_cache(tmp_path, monkeypatch):
    fake_fashion(tmp_path / "datasets" / "fashion-mnist")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    d = load(DataSpec("fashion_mnist", 0.2, 0.2, 0))
    assert d.sizes() == {"train": 160, "val": 40, "test": 50}


def test_fashion_mnist_max_rows_shrinks_the_official_test_split_in_proportion(tmp_path):
    folder = fake_fashion(tmp_path / "f", n_train=400, n_test=100)
    full = load(DataSpec("fashion_mnist", 0.2, 0.2, 0, path=str(folder)))
    d = load(DataSpec("fashion_mnist", 0.2, 0.2, 0, path=str(folder), max_rows=250))
    assert d.sizes() == {"train": 160, "val": 40, "test": 50}
    assert np.all(np.bincount(d.y_test) == 5)  # stratified: 5 of each class
    official = {r.tobytes() for r in full.X_test}
    assert all(r.tobytes() in official for r in d.X_test)
    assert d.fingerprint != full.fingerprint


def test_fashion_mnist_missing_folder_names_it_and_data_path(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    one_line_error(DataSpec("fashion_mnist", path=str(missing)), str(missing), "data.path=")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    one_line_error(
        DataSpec("fashion_mnist"), str(tmp_path / "datasets" / "fashion-mnist"), "data.path="
    )


def test_fashion_mnist_corrupt_file_is_named(tmp_path):
    folder = fake_fashion(tmp_path / "f")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    one_line_error(DataSpec("fashion_mnist", path=str(folder)), "train-labels-idx1-ubyte.gz")


def test_fashion_mnist_relative_path_resolves_against_the_working_directory(tmp_path, monkeypatch):
    fake_fashion(tmp_path / "data" / "fm")
    monkeypatch.chdir(tmp_path)
    assert load(DataSpec("fashion_mnist", path="data/fm")).sizes()["test"] == 50


# ------------------------------------------------------------------- California housing


def sklearn_california(raw_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """X, y exactly as fetch_california_housing defines them, from StatLib's file."""
    a = np.loadtxt(raw_file, delimiter=",")
    lon, lat, age, rooms, beds, pop, households, income, value = a.T
    X = np.column_stack(
        [income, age, rooms / households, beds / households, pop, pop / households, lat, lon]
    )
    return X, value / 100000.0


def test_california_housing_equals_sklearns_definition():
    folder = shared("california_housing")
    d = LOADERS["california_housing"](DataSpec("california_housing", path=str(folder)))
    assert d.X.shape == (20640, 8) and d.y.shape == (20640,) and d.X.dtype == np.float32
    assert not d.task.is_classification
    assert d.feature_names == (
        "MedInc",
        "HouseAge",
        "AveRooms",
        "AveBedrms",
        "Population",
        "AveOccup",
        "Latitude",
        "Longitude",
    )
    X, y = sklearn_california(folder / "cal_housing.data")
    np.testing.assert_array_equal(d.X, X.astype(np.float32))
    np.testing.assert_array_equal(d.y, y)
    assert d.y.mean() == pytest.approx(2.0686, abs=1e-4)
    assert d.X[:, 0].mean() == pytest.approx(3.8707, abs=1e-4)  # MedInc
    np.testing.assert_allclose(
        d.X[0], [8.3252, 41, 6.984127, 1.02381, 322, 2.555556, 37.88, -122.23], rtol=1e-5
    )
    assert d.y[0] == pytest.approx(4.526)


def test_california_housing_split_from_a_file_path_relative_to_the_cwd(monkeypatch):
    shared("california_housing")
    monkeypatch.chdir(ROOT)
    d = load(
        DataSpec(
            "california_housing",
            0.2,
            0.2,
            0,
            path="../shared/data/california_housing/cal_housing.data",
        )
    )
    assert d.sizes() == {"train": 12384, "val": 4128, "test": 4128}
    assert d.task.kind == "regression" and d.y_train.dtype == np.float64


def test_california_housing_reads_sklearns_cache_in_a_data_home(tmp_path):
    import joblib

    folder = shared("california_housing")
    a = np.loadtxt(folder / "cal_housing.data", delimiter=",")[:, [8, 7, 2, 3, 4, 5, 6, 1, 0]]
    joblib.dump(a, tmp_path / "cal_housing_py3.pkz", compress=6)
    from_cache = LOADERS["california_housing"](DataSpec("california_housing", path=str(tmp_path)))
    from_file = LOADERS["california_housing"](DataSpec("california_housing", path=str(folder)))
    np.testing.assert_array_equal(from_cache.X, from_file.X)
    np.testing.assert_array_equal(from_cache.y, from_file.y)


def test_california_housing_not_cached_says_to_pass_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    one_line_error(DataSpec("california_housing"), str(tmp_path), "data.path=", "cal_housing.data")
    missing = tmp_path / "nope.data"
    one_line_error(DataSpec("california_housing", path=str(missing)), str(missing), "data.path=")


def test_california_housing_rejects_classes_and_subsamples_rows():
    folder = shared("california_housing")
    one_line_error(
        DataSpec("california_housing", path=str(folder), classes=(0, 1)),
        "data.classes=[0, 1]",
        "regression",
    )
    d = load(DataSpec("california_housing", 0.2, 0.2, 0, path=str(folder), max_rows=1000))
    assert sum(d.sizes().values()) == 1000


# ---------------------------------------------------------------------------------- CSV


@pytest.fixture
def table() -> pd.DataFrame:
    """200 rows: numeric, categorical and bool features; class and value targets."""
    rng = np.random.default_rng(0)
    n = 200
    size = rng.normal(size=n)
    return pd.DataFrame(
        {
            "size": size,
            "rooms": rng.integers(1, 6, n),
            "color": rng.choice(["red", "green", "blue"], n),
            "new": rng.random(n) < 0.5,
            "kind": np.where(size > 0, "big", "small"),  # text target: classification
            "grade": (np.arange(n) % 3) + 1,  # 3 integer values: classification
            "price": 3 * size + rng.normal(size=n),  # float target: regression
        }
    )


def write(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as CSV or Parquet, by the file's suffix."""
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_infers_classification_from_text_and_small_integer_targets(table, tmp_path, suffix):
    path = write(table.drop(columns=["grade", "price"]), tmp_path / f"t{suffix}")
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="kind"))
    assert d.task.kind == "classification" and d.task.n_classes == 2
    # raw rows: each member encodes them itself
    assert d.input_spec.table and d.input_spec.feature_names == ("size", "rooms", "color", "new")
    assert isinstance(d.X_train, pd.DataFrame) and sum(d.sizes().values()) == 200
    y = np.concatenate([d.y_train, d.y_val, d.y_test])
    X = pd.concat([d.X_train, d.X_val, d.X_test])
    np.testing.assert_array_equal(y, np.where(X["size"] > 0, 0, 1))  # 'big' < 'small': 0, 1
    assert d.task.labels == ("big", "small")  # named in the summary and the served model
    path = write(table.drop(columns=["kind", "price"]), tmp_path / f"g{suffix}")
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="grade"))
    assert d.task.kind == "classification" and d.task.n_classes == 3
    assert set(np.unique(d.y_train)) == {0, 1, 2}


def test_csv_infers_classification_for_two_values_on_a_small_table_and_says_so(tmp_path):
    # 30 rows of a 0/1 target: 2 values are not under 5% of the rows, still two classes
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=30), "churn": [0, 1] * 15})
    d = load(
        DataSpec("csv", 0.2, 0.2, 0, path=str(write(frame, tmp_path / "t.csv")), target="churn")
    )
    assert d.task.kind == "classification" and d.task.labels == ("0", "1")
    assert "task classification inferred from the target 'churn' (2 classes)" in d.notes[0]
    three = pd.DataFrame({"x": rng.normal(size=60), "grade": ["a", "b", "c"] * 20})
    path = str(write(three, tmp_path / "three.csv"))
    kept = load(DataSpec("csv", 0.2, 0.2, 0, path=path, target="grade", classes=(0, 2)))
    said = "(3 classes, of which data.classes keeps 2)"  # it said 3 classes of a 2-class sweep
    assert kept.task.n_classes == 2 and said in kept.notes[0], kept.notes
    forced = DataSpec(
        "csv", 0.2, 0.2, 0, path=str(tmp_path / "t.csv"), target="churn", task="regression"
    )
    d = load(forced)
    assert d.task.kind == "regression" and not d.notes  # a task given is not a note


def test_data_classes_leaves_out_a_class_too_small_to_split(tmp_path):
    """A doctor-visits table whose count 9 has one row: ``data.classes`` keeping 0..4 was
    refused for class 9's one row, which it drops."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=61), "visits": [0, 1, 2] * 20 + [9]})
    path = str(write(frame, tmp_path / "visits.csv"))
    kept = load(
        DataSpec(
            "csv", 0.2, 0.2, 0, path=path, target="visits", task="classification", classes=(0, 1, 2)
        )
    )
    assert kept.task.labels == ("0", "1", "2") and len(kept.y_train) + len(kept.y_val) < 61
    with pytest.raises(ValueError, match="class '9' of target 'visits' has 1 row"):
        load(
            DataSpec(
                "csv",
                0.2,
                0.2,
                0,
                path=path,
                target="visits",
                task="classification",
                classes=(0, 3),
            )
        )


def test_a_semicolon_csv_with_decimal_commas_is_read_as_its_numbers(tmp_path):
    rng = np.random.default_rng(3)
    size = rng.normal(size=60).round(3)
    lines = ["größe;city;kind"] + [
        f"{str(v).replace('.', ',')};{c};{'big' if v > 0 else 'small'}"
        for v, c in zip(size, rng.choice(["Köln, Nord", "Bonn"], 60), strict=True)
    ]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")  # with a byte-order mark
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="kind"))
    assert d.input_spec.feature_names == ("größe", "city")
    X = pd.concat([d.X_train, d.X_val, d.X_test])
    assert pd.api.types.is_float_dtype(X["größe"]) and set(X["city"]) == {"Köln, Nord", "Bonn"}
    np.testing.assert_allclose(np.sort(X["größe"].to_numpy()), np.sort(size))
    assert "t.csv read as separated by ';' (from its header)" in d.notes
    assert "decimal commas read as numbers in column(s) größe" in d.notes
    # a cell typed with a dot, a placeholder: missing (as members read them), said, not text
    odd = lines[:]
    odd[5], odd[9] = f"36.6;{odd[5].split(';', 1)[1]}", f"k.A.;{odd[9].split(';', 1)[1]}"
    path.write_text("\n".join(odd) + "\n", encoding="utf-8")
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="kind"))
    X = pd.concat([d.X_train, d.X_val, d.X_test])
    assert pd.api.types.is_float_dtype(X["größe"]) and X["größe"].isna().sum() == 2
    (said,) = [n for n in d.notes if n.startswith("column 'größe': 2 cell(s) not written with")]
    assert "'36.6'" in said and "'k.A.'" in said and said.endswith("read as missing")
    # dots between thousands beside a dot decimal (1.250, 0.875) may be decimals: kept as
    # text; and a column whose only comma is in a cell that is no number is no number
    from runner.data.tables import _decimal_commas

    odd = pd.DataFrame(
        {
            "dots": ["1.250", "72.500", "12.375", "3.125", "0.875"] * 3 + ["1,5"],
            "floor": ["1", "2", "3", "4", "5"] * 3 + ["EG, links"],
        }
    )
    assert _decimal_commas(odd.copy(), given=False)[:2] == ([], [])
    # names with commas in a semicolon file; a dot between thousands
    rows = [f"{1000 * (i + 1)},5;{i % 3};{'x' if i % 2 else 'y'}" for i in range(30)]
    rows = [r.replace("1000,", "1.000,") for r in rows]  # one with a thousands dot
    path.write_text("Preis, EUR;Zimmer;kind\n" + "\n".join(rows) + "\n")
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="kind"))
    X = pd.concat([d.X_train, d.X_val, d.X_test])
    assert d.input_spec.feature_names == ("Preis, EUR", "Zimmer")
    assert sorted(X["Preis, EUR"]) == [1000 * (i + 1) + 0.5 for i in range(30)]
    # a member fitted on those rows reads the file's own text ("1.000,5") as the same numbers
    prep = TablePrep().fit(d.X_train)
    raw = pd.read_csv(path, sep=";", dtype=str).drop(columns="kind")
    assert prep.unreadable(raw) == {}
    np.testing.assert_allclose(prep.transform(raw)[:, 0], [1000 * (i + 1) + 0.5 for i in range(30)])
    again = TablePrep.from_dict(json.loads(json.dumps(prep.to_dict())))
    np.testing.assert_array_equal(again.transform(raw), prep.transform(raw))
    # a comma-separated file whose quoted column names hold semicolons stays comma-separated
    path.write_text(
        '"a;b;c",kind\n' + "".join(f"{2 * i},{'x' if i % 2 else 'y'}\n" for i in range(30))
    )
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="kind"))
    assert d.input_spec.feature_names == ("a;b;c",) and not any("separated" in n for n in d.notes)


def test_decimal_commas_with_exponents_percent_or_currency_read_as_numbers(tmp_path):
    """pandas writes small numbers 7,7e-06 with decimal=","; shares come as 8,6 %: numbers,
    as a member reads them when served, not IDs or text (amounts with a currency sign stay
    as they were read: their comma may be either mark)."""
    rng = np.random.default_rng(4)
    true = pd.DataFrame(
        {
            "dose": 10 ** rng.uniform(-7, 0, 200),
            "share": rng.uniform(0, 100, 200).round(1),
            "amount": rng.uniform(1000, 9000, 200).round(2),
        }
    )
    frame = true.assign(y=np.where(true["dose"] > 1e-3, "hi", "lo"))
    frame["share"] = [f"{v:.1f} %".replace(".", ",") for v in true["share"]]
    frame["amount"] = [
        f"{v:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".") for v in true["amount"]
    ]
    path = tmp_path / "t.csv"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    assert "e-0" in path.read_text() and "2.3" in path.read_text()  # as pandas writes them
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="y"))
    X = pd.concat([d.X_train, d.X_val, d.X_test])
    for column in ("dose", "share", "amount"):
        assert pd.api.types.is_float_dtype(X[column]), X.dtypes
        np.testing.assert_allclose(np.sort(X[column]), np.sort(true[column]), rtol=1e-12)
    assert not [n for n in d.notes if "ID" in n or "missing" in n], d.notes
    prep = TablePrep().fit(d.X_train)
    raw = pd.read_csv(path, sep=";", dtype=str).drop(columns="y")
    assert prep.unreadable(raw) == {}
    np.testing.assert_allclose(prep.transform(raw), prep.transform(true[raw.columns]))
    # amounts with a currency sign and a comma before three digits ($84,361) are thousands,
    # as a member reads formatted amounts: a guessed decimal comma would make them 84.361
    frame["amount"] = [f"${v:,.0f}" for v in true["amount"] * 10]
    frame.to_csv(path, sep=";", decimal=",", index=False)
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="y"))
    assert "amount" not in " ".join(n for n in d.notes if "decimal commas" in n), d.notes
    prep = TablePrep().fit(d.X_train)
    raw = pd.read_csv(path, sep=";", dtype=str).drop(columns="y")
    amounts = prep.transform(raw)[:, list(raw.columns).index("amount")]
    np.testing.assert_allclose(amounts, (true["amount"] * 10).round())


def test_whole_numbers_with_thousands_dots_in_a_decimal_comma_file_read_as_thousands(tmp_path):
    rng = np.random.default_rng(4)
    people = rng.integers(500, 90_000, 60)
    rows = [  # 322,11;46.246;x: a decimal comma, dots between thousands
        f"{a:.2f};{p:,};{'x' if p > 40_000 else 'y'}".replace(".", "#")
        .replace(",", ".")
        .replace("#", ",")
        for a, p in zip(rng.uniform(10, 500, 60), people, strict=True)
    ]
    path = tmp_path / "de.csv"
    path.write_text("area;people;kind\n" + "\n".join(rows) + "\n")
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="kind"))
    X = pd.concat([d.X_train, d.X_val, d.X_test])
    assert sorted(X["people"]) == sorted(people.astype(float))
    assert any(
        n.startswith("dots between thousands (17.027 = 17027) read in column(s) people")
        for n in d.notes
    ), d.notes
    # served from the file read with a decimal dot (17.027 a number): missing and said, not 17
    prep = TablePrep().fit(d.X_train)
    at = prep.feature_names.index("people")
    dotted = pd.read_csv(path, sep=";").drop(columns="kind")
    assert prep.unreadable(dotted)["people"][0] == (people >= 1000).sum()
    assert (prep.transform(dotted)[:, at] > 400).all()  # the median, not 46.246
    for read in (pd.read_csv(path, sep=";", decimal=","), pd.read_csv(path, sep=";", dtype=str)):
        np.testing.assert_allclose(prep.transform(read.drop(columns="kind"))[:, at], people)
    # the other columns' served numbers are numbers, whatever their decimals; and so are a
    # served 1234.5 or 0.1234 here, which no thousands dot misread makes
    area = prep.feature_names.index("area")
    served = pd.DataFrame({"area": [1234.5, 999.99], "people": [0.1234, 1234.5]})
    assert prep.unreadable(served) == {}
    np.testing.assert_allclose(
        prep.transform(served)[:, [area, at]], [[1234.5, 0.1234], [999.99, 1234.5]], rtol=1e-6
    )
    # with data.decimal=comma, a column written 1.234 (thousands) is one of thousands too
    given = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="kind", decimal=","))
    again = TablePrep().fit(given.X_train)
    assert [c.name for c in again.columns if c.whole] == ["people"]


def test_data_sep_and_decimal_read_what_the_header_cannot_decide(tmp_path):
    # two columns separated by ';' with a comma in a name: the header ties, ties go to ','
    rows = [f"{i},25;{'x' if i % 2 else 'y'}" for i in range(30)]
    path = tmp_path / "t.csv"
    path.write_text("Preis, EUR;kind\n" + "\n".join(rows) + "\n")
    served = pd.DataFrame({"Preis, EUR": ["3,75", "1.003,75", "0.500", 2.5, "1.25"]})
    guessed = DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="kind")
    one_line_error(guessed, "separated by ';', pass data.sep=semicolon")
    from runner.spec import parse_data

    spec = parse_data({"name": "csv", "path": str(path), "target": "kind", "sep": "semicolon"})
    assert spec.sep == ";"
    # a separator given wrong: the header is one column, and the line said only that
    wrong = replace(spec, sep="|")
    one_line_error(wrong, "data.sep='|' did not split the header, which seems separated by ';'")
    d = load(spec)
    X = pd.concat([d.X_train, d.X_val, d.X_test])
    assert d.input_spec.feature_names == ("Preis, EUR",)
    assert sorted(X["Preis, EUR"]) == [i + 0.25 for i in range(30)]  # decimal commas follow
    assert not any("from its header" in n for n in d.notes)
    for given in ({"sep": "semicolon"}, {"sep": "semicolon", "decimal": "comma"}):
        # guessed from the separator, or given (pandas reads those): members read served
        # text the file's way, and a dot decimal ("0.500": 500 or 0.5?) as missing
        fitted = load(parse_data({"name": "csv", "path": str(path), "target": "kind", **given}))
        prep = TablePrep().fit(fitted.X_train)
        assert prep.unreadable(served) == {"Preis, EUR": (2, "0.500")}
        np.testing.assert_allclose(prep.transform(served)[[0, 1, 3], 0], [3.75, 1003.75, 2.5])
    # decimal='.' keeps the text; a comma-separated file with decimal=',' converts quoted ones
    kept = load(replace(spec, decimal="."))
    assert not pd.api.types.is_numeric_dtype(kept.X_train["Preis, EUR"])
    path.write_text("p,q,kind\n" + "".join(f'"{i},5","1.{i:03d}",{i % 2}\n' for i in range(30)))
    d = load(parse_data({"name": "csv", "path": str(path), "target": "kind", "decimal": "comma"}))
    X = pd.concat([d.X_train, d.X_val, d.X_test])
    assert sorted(X["p"]) == [i + 0.5 for i in range(30)]
    assert sorted(X["q"]) == [1000 + i for i in range(30)]  # a dot between thousands
    for key, value, allowed in [
        ("sep", ";;", "must be one character"),
        ("sep", 5, "must be one character"),
        ("decimal", ";", "must be comma, dot (or ',', '.') or null"),
    ]:
        with pytest.raises(ValueError) as err:
            parse_data({"name": "csv", "path": str(path), "target": "kind", key: value})
        assert f"data.{key}" in str(err.value) and allowed in str(err.value)
        assert repr(value) in str(err.value) and "\n" not in str(err.value)


def test_a_decimal_comma_never_reads_a_decimal_dot_as_a_thousands_dot(tmp_path):
    from runner.spec import parse_data

    # a comma-separated file of dot decimals: data.decimal=comma is refused, not 36.6 -> 366
    path = tmp_path / "t.csv"
    path.write_text("temp,kind\n" + "".join(f"{36 + i / 10},{i % 2}\n" for i in range(30)))
    spec = parse_data({"name": "csv", "path": str(path), "target": "kind", "decimal": "comma"})
    one_line_error(spec, "data.decimal=comma", "column 'temp'", "'36.0'", "data.decimal=dot")
    # a semicolon file: 1.234,56 is 1234.56, while an address or a date stays text
    rows = [f"{i + 1}.234,5;10.0.0.{i};12.03.2020;{i % 2}" for i in range(30)]
    path.write_text("p;ip;day;kind\n" + "\n".join(rows) + "\n")
    d = load(replace(spec, sep=";"))
    X = pd.concat([d.X_train, d.X_val, d.X_test])
    assert sorted(X["p"]) == [1000 * (i + 1) + 234.5 for i in range(30)]
    assert set(X["ip"]) == {f"10.0.0.{i}" for i in range(30)} and set(X["day"]) == {"12.03.2020"}
    for sep in ("comma", ","):
        with pytest.raises(ValueError) as err:
            parse_data({"name": "csv", "path": "t.csv", "target": "k", "sep": sep, "decimal": ","})
        assert "data.sep and data.decimal are both ','" in str(err.value)


def test_a_tsv_reads_decimal_commas_like_any_file_not_separated_by_commas(tmp_path):
    rows = "".join(f"{i},5\t{'x' if i % 2 else 'y'}\t{1000 + i},25\n" for i in range(30))
    (tmp_path / "t.tsv").write_text("size\tcity\tprice\n" + rows)
    d = load(DataSpec("csv", path=str(tmp_path / "t.tsv"), target="price"))
    X = pd.concat([d.X_train, d.X_val, d.X_test])
    assert sorted(X["size"]) == [i + 0.5 for i in range(30)] and d.task.kind == "regression"
    assert sorted(np.concatenate([d.y_train, d.y_val, d.y_test])) == [
        1000.25 + i for i in range(30)
    ]
    assert "decimal commas read as numbers in column(s) size, price" in d.notes
    assert not [n for n in d.notes if "three digits after it" in n]
    # 1,234 and 2,500 only: decimals here, but maybe thousands: the note says how to read them so
    rows = "".join(f"{i + 1},{250 * (i % 4):03d}\t{i % 2}\n" for i in range(30))
    (tmp_path / "k.tsv").write_text("amount\tlabel\n" + rows)
    d = load(DataSpec("csv", path=str(tmp_path / "k.tsv"), target="label"))
    assert any("every comma in column(s) amount has three digits" in n for n in d.notes), d.notes
    assert "data.decimal=dot" in " ".join(d.notes)


def test_a_target_of_numbers_in_text_is_read_or_named_with_the_decimal_that_reads_it(tmp_path):
    # commas between thousands under a decimal dot: numbers, not classes of one to three rows
    path = tmp_path / "t.csv"
    path.write_text("x,price\n" + "".join(f'{2 * i},"{66 + i % 5},911.68"\n' for i in range(60)))
    d = load(DataSpec("csv", path=str(path), target="price"))
    y = np.concatenate([d.y_train, d.y_val, d.y_test])
    assert d.task.kind == "regression"
    assert sorted(y) == sorted((66 + i % 5) * 1000 + 911.68 for i in range(60))
    assert "target 'price' read as numbers with commas between thousands ('66,911.68')" in d.notes
    labels = load(DataSpec("csv", path=str(path), target="price", task="classification"))
    assert labels.task.n_classes == 5 and "66,911.68" in labels.task.labels  # labels stay
    # amounts with a currency sign, as a member reads such a feature column
    path.write_text("x,price\n" + "".join(f'{2 * i},"${66 + i},911.68"\n' for i in range(60)))
    d = load(DataSpec("csv", path=str(path), target="price"))
    y = np.concatenate([d.y_train, d.y_val, d.y_test])
    assert d.task.kind == "regression"
    np.testing.assert_allclose(sorted(y), [(66 + i) * 1000 + 911.68 for i in range(60)])
    assert "target 'price' read as numbers from text such as '$66,911.68'" in d.notes
    # ... and with a decimal comma ("$607,23" in a semicolon file): classes of one row each
    path.write_text("x;price\n" + "".join(f"{2 * i};${600 + i},{i % 7}3\n" for i in range(60)))
    d = load(DataSpec("csv", path=str(path), target="price"))
    y = np.concatenate([d.y_train, d.y_val, d.y_test])
    assert d.task.kind == "regression"
    np.testing.assert_allclose(sorted(y), sorted(600 + i + (i % 7) / 10 + 0.03 for i in range(60)))
    # decimal commas in a comma-separated file, or decimal dots in a semicolon one: a hint
    path.write_text("x,price\n" + "".join(f'{2 * i},"{4947 + i},21"\n' for i in range(30)))
    one_line_error(
        DataSpec("csv", path=str(path), target="price"), "'4947,21'", "data.decimal=comma"
    )
    path.write_text("x;price\n" + "".join(f"{2 * i};{66 + i},911.68\n" for i in range(30)))
    one_line_error(DataSpec("csv", path=str(path), target="price"), "'66,911.68'", "decimal=dot")
    d = load(DataSpec("csv", path=str(path), target="price", decimal="."))
    assert d.task.kind == "regression" and max(d.y_train) < 96_000
    # text codes without the other mark stay labels as they were ('1', not '1.0')
    codes = pd.DataFrame(
        {"x": range(0, 120, 2), "price": pd.Series(["1", "2", "3"] * 20, dtype=str)}
    )
    codes.to_parquet(tmp_path / "codes.parquet")
    d = load(DataSpec("csv", path=str(tmp_path / "codes.parquet"), target="price"))
    assert d.task.kind == "classification" and list(d.task.labels) == ["1", "2", "3"]


def test_a_target_of_plain_numbers_in_text_is_numbers_and_its_placeholders_drop_rows(tmp_path):
    rng = np.random.default_rng(0)
    values = pd.Series([f"{v:.3f}" for v in rng.normal(10, 2, 200)], dtype="str")
    pd.DataFrame({"x": range(0, 400, 2), "y": values}).to_parquet(tmp_path / "t.parquet")
    for task in (None, "regression"):
        d = load(DataSpec("csv", path=str(tmp_path / "t.parquet"), target="y", task=task))
        assert d.task.kind == "regression"
        y = np.concatenate([d.y_train, d.y_val, d.y_test])
        np.testing.assert_allclose(sorted(y), sorted(values.astype(float)))
    cells = list(values)
    cells[5] = cells[9] = "?"
    pd.DataFrame({"x": range(0, 400, 2), "y": cells}).to_csv(tmp_path / "q.csv", index=False)
    for task in (None, "regression"):
        d = load(DataSpec("csv", path=str(tmp_path / "q.csv"), target="y", task=task))
        assert d.task.kind == "regression"
        assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 198
        assert len(d.X_train) == len(d.y_train)
        note = "target 'y' read as numbers; 2 row(s) whose target is no number ('?') are dropped"
        assert note in d.notes
    # a few class codes and some text are all labels, not numbers with placeholders
    codes = pd.DataFrame(
        {"x": range(0, 400, 2), "y": [str(i % 3) for i in range(188)] + ["3+"] * 12}
    )
    codes.to_csv(tmp_path / "c.csv", index=False)
    d = load(DataSpec("csv", path=str(tmp_path / "c.csv"), target="y"))
    assert d.task.labels == ("0", "1", "2", "3+")
    # mostly words: a regression on it names a cell
    words = pd.DataFrame({"x": range(0, 400, 2), "y": ["a" if i % 3 else "5" for i in range(200)]})
    words.to_csv(tmp_path / "w.csv", index=False)
    one_line_error(
        DataSpec("csv", path=str(tmp_path / "w.csv"), target="y", task="regression"),
        "133 of 200 rows ('a')",
        "data.task=regression needs numbers",
    )


@pytest.mark.parametrize(
    ("header", "names"),
    [("x;label;z;label", "'label'"), ("a;a;b;b;label", "'a' and 'b'"), ("x\tlabel\tx", "'x'")],
)
def test_a_header_naming_a_column_twice_is_refused_in_one_line(tmp_path, header, names):
    # pandas renames a second 'label' to 'label.1': a copy of the target among the features
    sep = ";" if ";" in header else "\t"
    width = len(header.split(sep))
    rows = "".join(sep.join([str(i % 2)] * width) + "\n" for i in range(30))
    path = tmp_path / ("t.csv" if sep == ";" else "t.tsv")
    path.write_text(header + "\n" + rows)
    one_line_error(
        DataSpec("csv", path=str(path), target="label"),
        f"{path.name} has more than one column named {names}",
    )


def test_csv_categorical_target_ignores_unused_categories(tmp_path):
    # a Parquet table filtered after its target became categorical keeps a category no row has
    rng = np.random.default_rng(2)
    y = pd.Categorical(rng.choice(["lo", "hi"], 60), categories=["lo", "unused", "hi"])
    frame = pd.DataFrame({"x": rng.normal(size=60), "y": y})
    d = load(
        DataSpec("csv", 0.2, 0.2, 0, path=str(write(frame, tmp_path / "t.parquet")), target="y")
    )
    assert d.task.n_classes == 2 and set(d.task.labels) == {"lo", "hi"}
    # a class that has rows but too few is named by its value
    frame = pd.DataFrame({"x": rng.normal(size=40), "y": ["a"] * 38 + ["b"] * 2})
    one_line_error(
        DataSpec("csv", path=str(write(frame, tmp_path / "few.csv")), target="y"),
        "class 'b' of target 'y' has 2 row(s)",
        "at least 3",
        "; drop its rows from the file or merge it into another class",
    )
    # classification forced on amounts: one class per value, which the error says
    amounts = pd.DataFrame({"x": rng.normal(size=60), "y": rng.normal(size=60) * 1000 + 5000})
    one_line_error(
        DataSpec(
            "csv",
            path=str(write(amounts, tmp_path / "amounts.csv")),
            target="y",
            task="classification",
        ),
        "has 1 row(s)",
        "; the target has 60 distinct values: data.task=regression reads them as numbers",
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_infers_regression_from_a_float_target(table, tmp_path, suffix):
    path = write(table, tmp_path / f"t{suffix}")
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="price"))
    assert d.task.kind == "regression" and d.y_train.dtype == np.float64
    assert "price" not in d.input_spec.feature_names
    assert "kind" in d.input_spec.feature_names


def test_csv_task_given_overrides_the_inference(table, tmp_path):
    path = write(table, tmp_path / "t.csv")
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="grade", task="regression"))
    assert d.task.kind == "regression"
    one_line_error(
        DataSpec("csv", path=str(path), target="kind", task="regression"), "'kind'", "numeric"
    )


def test_a_column_that_numbers_the_rows_is_dropped_before_it_can_give_a_sorted_file_away(
    tmp_path,
):
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    frame = pd.DataFrame({"x": x, "y": (x + rng.normal(size=400) > 0).astype(int)})
    frame = frame.sort_values("y", ignore_index=True)  # a file sorted by its target
    frame.insert(0, "No", range(1, 401))
    frame["age"] = range(400)  # named otherwise: a feature, however it counts
    d = load(DataSpec("csv", path=str(write(frame, tmp_path / "s.csv")), target="y"))
    assert list(d.X_train.columns) == ["x", "age"]
    assert "column 'No' is dropped: it numbers the rows 1..400 (a row number, not a " in (
        " ".join(d.notes)
    )
    named = frame.drop(columns="No").assign(**{"S.No": range(400)})  # named so, anywhere
    d = load(DataSpec("csv", path=str(write(named, tmp_path / "n.csv")), target="y"))
    assert "S.No" not in d.X_train.columns
    alone = frame[["No", "y"]]
    one_line_error(
        DataSpec("csv", path=str(write(alone, tmp_path / "a.csv")), target="y"),
        "no feature columns besides the target 'y' (the row numbers in 'No' are none)",
    )


def test_csv_many_integer_values_are_regression_and_missing_targets_dropped(tmp_path):
    n = 300
    frame = pd.DataFrame({"x": np.arange(0, 2 * n, 2, dtype=float), "y": np.arange(n) % 40})
    frame.loc[[5, 7], "y"] = np.nan  # pandas makes the column float; the rows are dropped
    path = write(frame, tmp_path / "t.csv")
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="y"))
    assert d.task.kind == "regression" and sum(d.sizes().values()) == n - 2
    assert d.notes[0] == "dropped 2 of 300 rows missing the target 'y'"
    assert d.notes[1].startswith("task regression inferred from the target 'y' (numbers)")


def test_dropped_target_rows_add_to_the_notes_on_how_the_file_was_read(tmp_path):
    rows = [f"{i},5;{'' if i < 3 else i % 2}" for i in range(40)]
    (tmp_path / "t.csv").write_text("x;y\n" + "\n".join(rows) + "\n")
    d = load(DataSpec("csv", path=str(tmp_path / "t.csv"), target="y"))
    assert d.notes[:3] == (
        "t.csv read as separated by ';' (from its header)",
        "decimal commas read as numbers in column(s) x",
        "dropped 3 of 40 rows missing the target 'y'",
    )


def test_csv_classes_relabel(table, tmp_path):
    path = write(table, tmp_path / "t.csv")
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="grade", classes=(2, 0)))
    assert d.task.n_classes == 2
    # grade 3 (id 2) is now 0, grade 1 (id 0) is now 1; grade 2 is gone
    y = np.concatenate([d.y_train, d.y_val, d.y_test])
    rooms = np.concatenate([d.X_train, d.X_val, d.X_test])[:, 1]
    assert len(y) == int(np.sum(table.grade != 2)) and set(np.unique(y)) == {0, 1}
    assert rooms.shape == y.shape


def test_csv_path_is_required_and_must_exist(tmp_path):
    one_line_error(DataSpec("csv", target="y"), "data.path", "null")
    missing = tmp_path / "missing.csv"
    one_line_error(DataSpec("csv", path=str(missing), target="y"), str(missing), "does not exist")
    one_line_error(DataSpec("csv", path=str(tmp_path), target="y"), "is a folder")


def test_csv_target_is_required_and_an_absent_one_lists_the_columns(table, tmp_path):
    path = write(table, tmp_path / "t.csv")
    one_line_error(DataSpec("csv", path=str(path)), "data.target", "null", "size, rooms")
    one_line_error(
        DataSpec("csv", path=str(path), target="colour"),
        "'colour'",
        "available columns: size, rooms, color, new, kind, grade, price",
    )


def test_csv_keeps_missing_values_dates_and_ids_for_the_members_to_encode(table, tmp_path):
    table.loc[3, "size"] = np.nan
    table.loc[5, "color"] = None
    table["when"] = pd.date_range("2020-01-01", periods=len(table), freq="D")
    table["id"] = [f"row-{i}" for i in range(len(table))]
    path = write(table, tmp_path / "t.parquet")
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="kind"))
    rows = pd.concat([d.X_train, d.X_val, d.X_test])
    assert rows["size"].isna().sum() == 1 and rows["color"].isna().sum() == 1
    assert {"when", "id"} <= set(d.input_spec.feature_names)


def test_parquet_decimals_are_numbers_and_list_columns_are_dropped_with_a_note(tmp_path):
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 60
    prices = [None if i == 4 else Decimal(f"{i}.25") for i in range(n)]
    columns = {
        "price": pa.array(prices, type=pa.decimal128(10, 2)),
        "tags": pa.array([["a"] * (i % 3) for i in range(n)]),
        "where": pa.array([{"lat": float(i), "lon": 0.0} for i in range(n)]),
        "y": pa.array([i % 2 for i in range(n)]),
    }
    pq.write_table(pa.table(columns), tmp_path / "t.parquet")
    d = load(DataSpec("csv", path=str(tmp_path / "t.parquet"), target="y"))
    assert d.input_spec.feature_names == ("price",) and not any("price" in n for n in d.notes)
    X = pd.concat([d.X_train, d.X_val, d.X_test])
    assert X["price"].dtype == np.float64 and X["price"].isna().sum() == 1
    assert sorted(X["price"].dropna()) == [i + 0.25 for i in range(n) if i != 4]
    assert "column 'tags' of t.parquet holds list<element: string> values" in d.notes[0]
    assert d.notes[1].startswith("column 'where' of t.parquet holds struct<")
    one_line_error(
        DataSpec("csv", path=str(tmp_path / "t.parquet"), target="tags"),
        "target column 'tags' of t.parquet holds list<",
    )


def test_a_target_column_named_true_is_found_though_hydra_reads_true_as_a_boolean(table, tmp_path):
    path = write(table.rename(columns={"kind": "true"}), tmp_path / "t.csv")
    data = load(DataSpec("csv", path=str(path), target=True))  # data.target=true
    assert data.task.is_classification and "true" not in data.input_spec.feature_names
    import pyarrow as pa
    import pyarrow.parquet as pq

    lists = pa.table({"true": pa.array([["a"]] * 30), "x": pa.array(range(30))})
    pq.write_table(lists, tmp_path / "t.parquet")  # a Parquet target read as a column name too
    one_line_error(
        DataSpec("csv", path=str(tmp_path / "t.parquet"), target=True),
        "target column 'true' of t.parquet holds list<",
    )


def test_csv_bad_tables_fail_in_one_line(table, tmp_path):
    one_line_error(
        DataSpec("csv", path=str(write(table, tmp_path / "t.csv")), target="prise"),
        "'prise'",
        "closest: 'price'",
    )
    # a count inferred as classes, one of them rare: the error says the task was inferred
    counts = pd.concat([table, table]).assign(kids=[i % 12 for i in range(399)] + [40])
    one_line_error(
        DataSpec("csv", path=str(write(counts, tmp_path / "k.csv")), target="kids"),
        "class '40' of target 'kids' has 1 row(s)",
        "inferred as classification from 13 whole-number values: data.task=regression",
    )
    fraud = table.assign(fraud=[0] * (len(table) - 1) + [1])  # two classes: no counts there
    said = one_line_error(
        DataSpec("csv", path=str(write(fraud, tmp_path / "f.csv")), target="fraud"),
        "class '1' of target 'fraud' has 1 row(s)",
    )
    assert "data.task=regression" not in said
    # a header cell with a stray space names the target all the same, said in a note (the
    # error said "closest: Churn " and asked for data.sep=semicolon, which read one column)
    spaced = table.rename(columns={"kind": "kind "})
    d = load(DataSpec("csv", path=str(write(spaced, tmp_path / "s.csv")), target="kind"))
    assert "target 'kind' is the column 'kind ' (spaces in the header)" in d.notes
    assert d.task.is_classification and "kind " not in d.input_spec.feature_names
    empty = table.assign(notes=np.nan)
    one_line_error(
        DataSpec("csv", path=str(write(empty, tmp_path / "e.csv")), target="kind"),
        "'notes'",
        "no value at all",
    )
    one_class = table.assign(kind="big")
    one_line_error(
        DataSpec("csv", path=str(write(one_class, tmp_path / "o.csv")), target="kind"),
        "'kind'",
        "1 distinct value",
    )
    rare = table.copy()
    rare.loc[0, "kind"] = "huge"
    one_line_error(
        DataSpec("csv", path=str(write(rare, tmp_path / "r.csv")), target="kind"),
        "class 'huge'",
        "1 row(s)",
    )
    (tmp_path / "blank.csv").write_text("")
    one_line_error(DataSpec("csv", path=str(tmp_path / "blank.csv"), target="kind"), "is empty")
    (tmp_path / "latin.csv").write_bytes("name,kind\ncaf\xe9,a\n".encode("latin-1"))
    one_line_error(
        DataSpec("csv", path=str(tmp_path / "latin.csv"), target="kind"),
        "not UTF-8",
        "b'\\xe9'",  # the bytes that are not, rather than a position in pandas' buffer
    )
    (tmp_path / "book.xlsx").write_bytes(b"PK\x03\x04 a spreadsheet")
    one_line_error(
        DataSpec("csv", path=str(tmp_path / "book.xlsx"), target="kind"),
        "book.xlsx is a spreadsheet",
        "CSV (UTF-8) or Parquet",
    )
    np.savez(tmp_path / "imgs.npz", x=np.zeros((4, 2, 2)), y=np.arange(4))
    one_line_error(
        DataSpec("csv", path=str(tmp_path / "imgs.npz"), target="y"),
        "imgs.npz is a NumPy file, not a table; data=images reads",
    )
    path = write(table, tmp_path / "big.csv")
    one_line_error(DataSpec("csv", path=str(path), target="kind", row_limit=100), "row_limit=100")
    # as the error advises: subsampled to the limit, the table passes
    capped = load(DataSpec("csv", path=str(path), target="kind", row_limit=100, max_rows=100))
    assert len(capped.y_train) + len(capped.y_val) + len(capped.y_test) == 100
    one_line_error(
        DataSpec("csv", path=str(path), target="kind", row_limit=100, max_rows=101), "at most 100"
    )
    one_line_error(DataSpec("csv", path=str(path), target="kind", column_limit=3), "column_limit=3")
    one_line_error(
        DataSpec("csv", path=str(path), target="kind", log_target=True), "regression only"
    )


def test_csv_unreadable_file_is_named(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_text("a,b\n1,2\n")
    one_line_error(DataSpec("csv", path=str(path), target="a"), str(path), "cannot read")


def test_a_regression_table_too_small_to_split_is_refused(tmp_path):
    path = tmp_path / "tiny.csv"
    pd.DataFrame({"x": np.arange(5.0), "y": np.arange(5.0) * 2}).to_csv(path, index=False)
    one_line_error(
        DataSpec("csv", path=str(path), target="y"),
        "3 training, 1 validation, 1 test rows, and each split needs at least 5",
    )


# ------------------------------------------------------------------------- Hydra configs


@pytest.mark.parametrize(
    "overrides",
    [
        ["data=fashion_mnist", "data.path=../shared/data/fashion-mnist", "data.classes=[0,6]"],
        ["data=california_housing", "data.path=../shared/data/california_housing"],
        ["data=csv", "data.path=t.csv", "data.target=kind", "data.max_rows=100"],
        ["data=digits", "data.classes=[3,8]", "data.max_rows=200"],
    ],
)
def test_data_configs_compose_into_valid_specs(overrides):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from runner.__main__ import CONF_DIR
    from runner.spec import parse_data

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    spec = parse_data(OmegaConf.to_container(cfg.data, resolve=True))
    assert spec.name == overrides[0].removeprefix("data=")


def test_subsampling_keeps_every_class_its_minimum_or_names_the_class_and_the_limit(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200), "y": ["a"] * 97 + ["b"] * 97 + ["c"] * 6})
    path = str(write(frame, tmp_path / "t.csv"))
    for seed in range(5):
        few = load(DataSpec("csv", seed=seed, path=path, target="y", max_train_rows=12))
        assert len(few.y_train) == 12 and set(few.y_train) == {0, 1, 2}
        small = load(DataSpec("csv", seed=seed, path=path, target="y", max_rows=40))
        kept = np.concatenate([small.y_train, small.y_val, small.y_test])
        assert len(kept) == 40 and np.bincount(kept)[2] == 3 and 2 in small.y_train
    one_line_error(
        DataSpec("csv", path=path, target="y", max_train_rows=2),
        "data.max_train_rows=2 keeps 0 row(s) of class 'c'",
        "at least 3",
    )
    one_line_error(
        DataSpec("csv", path=path, target="y", max_rows=8),
        "data.max_rows=8 keeps 0 row(s) of class 'c', fewer than the 3 it needs",
        "raise data.max_rows (to 12 at the very least)",  # 3 rows or more in every split
    )
    for rows in (12, 13):  # what the advice names splits
        load(DataSpec("csv", path=path, target="y", max_rows=rows))
    # ten classes: the test split's 20% must hold one row of each (30 rows held 6)
    one_line_error(
        DataSpec("digits", max_rows=30),
        "cannot split 30 rows into train/val/test",
        "raise data.max_rows (to 47 at the very least)",
    )
    load(DataSpec("digits", max_rows=47))


def test_the_table_limits_the_refusals_suggest_raising_are_hydra_overrides():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from runner.__main__ import CONF_DIR
    from runner.spec import SpecError, parse_data

    def spec(*overrides: str) -> DataSpec:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=["data=csv", *overrides])
        return parse_data(OmegaConf.to_container(cfg.data, resolve=True))

    default = DataSpec("csv")
    assert (spec().row_limit, spec().column_limit) == (default.row_limit, default.column_limit)
    raised = spec("data.row_limit=10000000", "data.column_limit=null")
    assert (raised.row_limit, raised.column_limit) == (10_000_000, None)
    with pytest.raises(SpecError, match=r"data.column_limit: must be an integer >= 1, got 0"):
        spec("data.column_limit=0")


def test_max_train_rows_caps_only_the_training_split():
    full = load(DataSpec("digits", 0.2, 0.2, 0))
    few = load(DataSpec("digits", 0.2, 0.2, 0, max_train_rows=100))
    assert len(few.y_train) == 100
    assert len(few.y_val) == len(full.y_val) and len(few.y_test) == len(full.y_test)
    np.testing.assert_array_equal(few.y_test, full.y_test)
    assert set(np.unique(few.y_train)) == set(range(10))  # stratified
    assert few.fingerprint != full.fingerprint


def test_class_labels_read_the_same_with_a_missing_target_or_stray_spaces(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    codes = pd.Series(np.where(x > 0.5, 2, np.where(x > -0.5, 1, 0)), dtype="float64")
    codes[3] = np.nan  # the integer codes become floats beside it
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": x, "grade": codes}).to_csv(path, index=False)
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="grade"))
    assert d.task.labels == ("0", "1", "2")
    words = rng.choice(["yes", "no", "yes ", " no", "  "], 300)
    pd.DataFrame({"x": x, "ok": words}).to_csv(path, index=False)
    d = load(DataSpec("csv", 0.2, 0.2, 0, path=str(path), target="ok"))
    assert d.task.labels == ("no", "yes")
    blank = int((words == "  ").sum())
    assert f"dropped {blank} of 300 rows missing the target 'ok'" in d.notes
    (said,) = [n for n in d.notes if "stray spaces" in n]
    assert "' no' is 'no'" in said and "'yes ' is 'yes'" in said


@pytest.mark.parametrize("own_test", [False, True])
def test_a_class_of_three_rows_gets_a_row_in_every_split_whatever_the_seed(own_test):
    """A stratified split rounded such a class to 2/0/1 in half the seeds: the ensemble was
    weighed on validation rows without it."""
    from models.base import Task
    from runner.data.split import split
    from runner.data.types import Raw

    y = np.zeros(1000, dtype=np.int64)
    y[[5, 500, 900]] = 1
    task = Task("classification", n_classes=2)
    extra = {"X_test": np.zeros((50, 2)), "y_test": np.r_[np.zeros(49), 1]} if own_test else {}
    for seed in range(10):
        train, val, test = split(
            Raw(X=np.zeros((1000, 2)), y=y, task=task, **extra), 0.2, 0.2, seed
        )
        parts = (train, val) if own_test else (train, val, test)
        expected = [2, 1] if own_test else [1, 1, 1]
        assert [int(y[p].sum()) for p in parts] == expected, seed
        assert sorted(np.concatenate(parts)) == list(range(1000))
        assert (len(train), len(val)) == ((800, 200) if own_test else (600, 200))


def test_a_stage_on_other_classes_or_another_target_leaves_out_the_experiments_rows(tmp_path):
    """A stage draws its own split: on all of digits' classes it trained on 59 of the 71 test
    rows of a final task on two of them, and a transfer member built on it was tested on rows
    its base had learnt."""
    from runner.data.split import held_out_of

    def keys(X) -> set[bytes]:
        if isinstance(X, pd.DataFrame):
            return set(X.apply(lambda row: "|".join(map(str, row)), axis=1))
        return {row.tobytes() for row in np.asarray(X)}

    final = load(DataSpec("digits", 0.2, 0.2, 0, classes=[8, 9]))
    stage = load(DataSpec("digits", 0.2, 0.2, 0))
    seen = keys(final.X_val) | keys(final.X_test)
    assert seen & (keys(stage.X_train) | keys(stage.X_val))  # the leak, as drawn
    held, removed = held_out_of(stage, final)
    assert not seen & (keys(held.X_train) | keys(held.X_val))
    assert removed == len(stage.y_train) + len(stage.y_val) - len(held.y_train) - len(held.y_val)
    assert removed > 0 and held.fingerprint != stage.fingerprint
    assert len(held.X_train) == len(held.y_train) and held.X_test is stage.X_test
    assert held_out_of(held, final)[1] == 0
    # bagged, the experiment validates on all its pooled rows: none of them either
    pooled = bagged(final, 3, seed=0)
    held, _ = held_out_of(stage, pooled)
    seen = keys(pooled.X_val) | keys(pooled.X_test)
    assert not seen & (keys(held.X_train) | keys(held.X_val))
    # tables: the stage's target is a column of the experiment's, and the other way round;
    # integer column names, and whole numbers stored as floats on one side, match alike
    rng = np.random.default_rng(0)
    table = pd.DataFrame({0: rng.integers(0, 50, 300), "b": rng.normal(size=300)})
    table["kind"] = np.where(table["b"] > 0, "p", "q")
    table["mass"] = table[0] * 2.0 + rng.normal(size=300)
    mass = load(
        DataSpec("csv", 0.2, 0.2, 0, path=str(write(table, tmp_path / "t.csv")), target="mass")
    )
    kind = load(
        DataSpec("csv", 0.2, 0.3, 1, path=str(write(table, tmp_path / "t.csv")), target="kind")
    )
    kind = replace(kind, X_train=kind.X_train.astype({"0": np.float64}))
    held, removed = held_out_of(kind, mass)
    common = ["0", "b"]
    final_rows = keys(pd.concat([mass.X_val, mass.X_test])[common].astype(float))
    assert removed > 0 and not final_rows & keys(
        pd.concat([held.X_train, held.X_val])[common].astype(float)
    )
    # tables that share a column or two are not the same rows: left alone
    other = replace(kind, X_train=kind.X_train[["b"]].assign(c=1.0), X_val=kind.X_val[["b"]])
    assert held_out_of(other, mass) == (other, 0)
    # nothing left to train on: one line
    with pytest.raises(ValueError, match="^every training row of the stage is one the exp"):
        held_out_of(
            replace(
                kind,
                X_train=mass.X_test.drop(columns="kind").assign(mass=0.0),
                y_train=kind.y_train[: len(mass.X_test)],
            ),
            mass,
        )
