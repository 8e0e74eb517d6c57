"""Safe artifacts: scikit-learn members and fitted ensembles are saved with skops and loaded
only when every type they hold is on the allow-list (``models.safe_io``); nothing is pickled."""

from __future__ import annotations

import collections
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.datasets import dump_svmlight_file, load_digits, make_regression
from sklearn.preprocessing import FunctionTransformer

import ensembles
import models
from models import safe_io
from models.base import InputSpec, Task
from models.store import ArtifactError

SKLEARN = sorted(name for name, entry in models.REGISTRY.items() if entry.framework == "sklearn")
TASKS = {"classification": Task("classification", 10), "regression": Task("regression")}
CASES = [
    (name, kind)
    for name in SKLEARN
    for kind, task in TASKS.items()
    if models.REGISTRY[name].supports(task)
]


@pytest.fixture(scope="module")
def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Digits (400 rows, 10 classes) and a small regression set, by task kind."""
    X, y = load_digits(return_X_y=True)
    Xr, yr = make_regression(n_samples=200, n_features=8, noise=0.5, random_state=0)
    return {
        "classification": (X[:400].astype(np.float32), y[:400]),
        "regression": (Xr.astype(np.float32), yr),
    }


def test_every_scikit_learn_entry_is_covered():
    assert SKLEARN and {name for name, _ in CASES} == set(SKLEARN)


@pytest.mark.parametrize("name, kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_scikit_learn_member_round_trips_through_skops(name, kind, datasets, tmp_path):
    task, (X, y) = TASKS[kind], datasets[kind]
    entry = models.REGISTRY[name]
    model = entry.build(InputSpec(X.shape[1]), task)
    entry.fit(model, task, (X, y), (X, y), None, {}, seed=0)
    folder = models.save_member(name, model, tmp_path / name)
    manifest = json.loads((folder / "kind.json").read_text())
    assert manifest["file"] == "model.skops"
    assert sorted(p.name for p in folder.iterdir()) == ["kind.json", "model.skops"]
    loaded = models.load_member(folder)
    assert loaded.kind is entry
    np.testing.assert_array_equal(loaded.predict(X, task), entry.predict(model, X, task))


class Gadget:
    """A type of this test module: nothing skops or the allow-list trusts."""

    def __init__(self) -> None:
        self.value = 1


@pytest.mark.parametrize(
    "obj, refused",
    [
        (collections.Counter("abc"), "collections.Counter"),
        (Gadget(), f"{__name__}.Gadget"),
        ({"f": minimize}, "scipy.optimize._minimize.minimize"),
        # a function under sklearn. that writes a file the model file names, run on predict
        (
            FunctionTransformer(func=dump_svmlight_file, kw_args={"f": "/tmp/x", "y": [0]}),
            "sklearn.datasets._svmlight_format_io.dump_svmlight_file",
        ),
    ],
    ids=["Counter", "test-class", "scipy-function", "sklearn-function"],
)
def test_a_type_outside_the_allow_list_is_refused_in_one_line(obj, refused, tmp_path):
    path = safe_io.dump(obj, tmp_path / "x.skops")
    assert refused in safe_io.untrusted_types(path)  # skops itself does not trust it
    with pytest.raises(ArtifactError) as err:
        safe_io.load(path)
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        f"refusing to load {path}: it holds what the allow-list does not trust (classes defined "
        f"under sklearn., ensembles.methods., ensembles.calibration., ensembles.budget.; no "
        f"functions): {refused}"
    )


def _rename_function(path: Path, module: str, name: str) -> None:
    """Rewrite the skops file's only function reference to ``module.name``."""
    with zipfile.ZipFile(path) as z:
        schema = json.loads(z.read("schema.json"))
    schema["content"]["f"].update({"__module__": module, "__class__": name})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("schema.json", json.dumps(schema))


def test_a_name_re_exported_into_an_allowed_module_is_refused(tmp_path):
    """``ensembles.methods.minimize`` starts with an allowed prefix but is scipy's function."""
    path = safe_io.dump({"f": minimize}, tmp_path / "x.skops")
    _rename_function(path, "ensembles.methods", "minimize")
    assert safe_io.untrusted_types(path) == ["ensembles.methods.minimize"]
    with pytest.raises(ArtifactError, match=r"no functions\): ensembles\.methods\.minimize$"):
        safe_io.load(path)


def test_a_file_that_is_not_skops_is_refused_in_one_line(tmp_path):
    path = tmp_path / "model.skops"
    path.write_bytes(b"\x80\x04not a zip")
    with pytest.raises(ArtifactError, match=r"^cannot read .* as a skops file: [^\n]*$"):
        safe_io.load(path)


def _predictions(classification: bool) -> tuple[np.ndarray, np.ndarray]:
    """Three members' validation predictions on 60 rows, and the targets."""
    rng = np.random.default_rng(0)
    if classification:
        return rng.dirichlet(np.ones(4), size=(3, 60)), np.arange(60) % 4
    y = rng.normal(size=60)
    return y + rng.normal(0, [[0.3], [0.6], [1.0]], size=(3, 60)), y


@pytest.mark.parametrize("classification", [True, False], ids=["classes", "values"])
@pytest.mark.parametrize("method", sorted(ensembles.METHODS))
def test_ensemble_method_round_trips_through_skops(method, classification, tmp_path):
    P, y = _predictions(classification)
    fitted = ensembles.make(method, random_state=0).fit(P, y)
    path = safe_io.dump(fitted, tmp_path / "estimator.skops")
    assert any(t.startswith("ensembles.methods.") for t in safe_io.untrusted_types(path))
    loaded = safe_io.load(path)
    assert type(loaded) is type(fitted)
    np.testing.assert_array_equal(loaded.predict(P), fitted.predict(P))


def test_an_edited_ensemble_spec_is_refused_in_one_line(tmp_path):
    """An ensemble_spec.json emptied by hand failed to load with KeyError: 'task'."""
    import pytest

    from models.store import ArtifactError
    from runner.pyfunc_model import _read_spec

    path = tmp_path / "ensemble_spec.json"
    for text, said in (
        ("{}", "it lacks task, names"),
        ('{"task": {"kind": "classification"}, "names": []}', "it lacks task.kind"),
        ("{not json", "not readable JSON"),
        ("[]", "it lacks task, names"),
    ):
        path.write_text(text)
        with pytest.raises(ArtifactError, match=f"refusing to load .*ensemble_spec.json: {said}"):
            _read_spec(path, ArtifactError)
    path.write_text('{"task": {"kind": "regression", "n_classes": null}, "names": ["a"]}')
    assert _read_spec(path, ArtifactError)["names"] == ["a"]
