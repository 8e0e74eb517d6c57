"""Adding a model kind is one module, one registry line and one config file, with nothing
changed under runner/ or ensembles/: tests/toy_kind.py registers a kind from outside
models/, and it goes through a sweep, the ensemble, the export and a fresh-process load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import TESTS, TOY_KIND, read_summary, run_cli, run_ensembles_cli


@pytest.mark.slow
def test_a_kind_registered_from_the_tests_folder_trains_ensembles_and_serves(workdir, tmp_path):
    db = f"sqlite:///{workdir}/mlflow.db"
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "smoke=true",
        *TOY_KIND,
        "+model@members.toy=toy",
        "~members.mlp",
        "~members.selu",
        "~members.convnet",
        "~members.resnet",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
        pythonpath=TESTS,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    toy = next(m for m in summary["members"] if m["name"] == "toy")
    assert toy["status"] == "FINISHED" and toy["model"] == "toy"
    assert toy["val_metric"] > 0.5  # nearest centroids on digits: far above chance (0.1)
    assert "toy" in summary["ensemble"]["weights"]
    client = MlflowClient(db)
    manifest = json.loads(
        Path(client.download_artifacts(toy["run_id"], "model/kind.json", str(tmp_path))).read_text()
    )
    assert manifest["kind"] == "toy" and manifest["module"] == "toy_kind"

    # another machine: a fresh process in another directory, without tests/ on its path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import sys, mlflow, numpy as np\n"
        "from sklearn.datasets import load_digits\n"
        "assert 'toy_kind' not in sys.modules\n"
        f"model = mlflow.pyfunc.load_model('runs:/{summary['ensemble']['run_id']}/model')\n"
        "X = load_digits().data[:7].astype('float32')\n"
        "proba = model.predict(X)\n"
        "assert proba.shape == (7, 10) and np.allclose(proba.sum(axis=1), 1), proba\n"
        "print('served', proba.argmax(axis=1).tolist())\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    clean["MLFLOW_TRACKING_URI"] = db
    served = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    assert "served" in served.stdout
    # re-ensembled where the kind's module is not importable: one line, not a traceback
    again = run_ensembles_cli(elsewhere, "experiment=quickstart", f"tracking_uri={db}", "n_boot=10")
    assert again.returncode == 2, again.stderr[-3000:]
    (line,) = [x for x in again.stderr.splitlines() if x.startswith("error: ")]
    assert "cannot find the code of module 'toy_kind' to ship with a served model" in line
    assert "Traceback" not in again.stderr
    client = MlflowClient(db)
    (failed,) = client.search_runs(
        [client.get_experiment_by_name("quickstart").experiment_id],
        "tags.`runner.role` = 'ensemble' and tags.`runner.reensemble` = 'true'",
    )
    assert failed.info.status == "FAILED"  # and says why, as every failed run does
    assert failed.data.tags["runner.error"] == line.removeprefix("error: ").removesuffix(
        " (this ensemble run ends FAILED)"
    )


def test_an_unimportable_model_module_fails_in_one_line_before_anything_runs(workdir):
    done = run_cli(workdir, "+experiment=quickstart", "runner.model_modules=[no_such_kind]")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: runner.model_modules: cannot import 'no_such_kind' (ModuleNotFoundError"
        )
    )
    assert not (workdir / "mlflow.db").exists()


def _import_from(folder: Path, name: str):
    """Import module ``name`` from ``folder``, as runner.model_modules would."""
    import importlib

    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def test_a_kind_made_from_a_zoo_class_is_the_registering_modules_and_ships_its_code(tmp_path):
    """models.register(SklearnKind(...)) from a user's module, as the README shows, recorded
    models.shallow as the kind's module: the export shipped models/ twice and failed, and a
    served model would not have found the kind. A namespace package ships its folder."""
    import models
    from models.registry import REGISTRY, code_path, module_of

    pkg = tmp_path / "teamkinds_ns"
    pkg.mkdir()  # no __init__.py: a namespace package
    (pkg / "lda_kind.py").write_text(
        "import models\nfrom models.shallow import SklearnKind\n"
        "from sklearn.discriminant_analysis import LinearDiscriminantAnalysis\n"
        "models.register(SklearnKind('lda_test_kind', classifier=LinearDiscriminantAnalysis))\n"
    )
    try:
        _import_from(tmp_path, "teamkinds_ns.lda_kind")
        assert module_of("lda_test_kind") == "teamkinds_ns.lda_kind"
        sys.path.insert(0, str(tmp_path))
        try:
            assert code_path("teamkinds_ns.lda_kind") == pkg
        finally:
            sys.path.remove(str(tmp_path))
        assert code_path("models") == Path(models.__file__).parent
    finally:
        REGISTRY.pop("lda_test_kind", None)


def test_a_kind_missing_part_of_the_contract_is_refused_when_it_registers():
    """A kind without load trained, ensembled and exported (exit 0), then failed to load
    anywhere with a bare NotImplementedError."""
    import models
    from models.kind import ModelKind

    class Half(ModelKind):
        name = "half_test_kind"

        def check(self, hparams, task):
            return dict(hparams)

        def build(self, spec, task, **hparams):
            return None

        def fit(self, *args, **kwargs):
            return {}

        def predict(self, model, X, task):
            return X

    with pytest.raises(
        TypeError,
        match=r"^model kind 'half_test_kind' \(Half\) does not "
        r"implement save, load; a kind implements check, build, fit",
    ):
        models.register(Half())
    assert "half_test_kind" not in models.REGISTRY


def test_a_sklearn_kind_of_a_users_own_estimator_class_is_refused_before_it_trains():
    """It failed on scikit-learn's private constraints, then, given those, after training:
    skops loads scikit-learn's own classes only."""
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin

    from models.base import Task
    from models.shallow import SklearnKind

    class Centroid(ClassifierMixin, BaseEstimator):
        def __init__(self, t: float = 1.0):
            self.t = t

        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

    kind = SklearnKind("centroid_test_kind", classifier=Centroid, scale=True)
    with pytest.raises(
        ValueError, match=r"^model 'centroid_test_kind': a SklearnKind saves"
    ) as err:
        kind.check({}, Task("classification", 2))
    assert "test_custom_kind" in str(err.value) and "a ModelKind of its own" in str(err.value)


def test_a_kind_ships_the_helper_modules_beside_it_that_it_imports(tmp_path, caplog):
    """A kind importing a helper of the user's (``from team_utils import ...``) was served
    without it: the model failed to load anywhere the helper was not importable."""
    from models.registry import REGISTRY, shipped_paths

    (tmp_path / "team_utils.py").write_text("import team_consts\nALPHA = team_consts.ALPHA\n")
    (tmp_path / "team_consts.py").write_text("ALPHA = 0.5\n")
    (tmp_path / "team_pkg").mkdir()
    (tmp_path / "team_pkg" / "__init__.py").write_text("def scale(x):\n    return x\n")
    (tmp_path / "team_unused.py").write_text("X = 1\n")  # beside it, not imported: not shipped
    (tmp_path / "team_kind.py").write_text(
        "import numpy as np\nimport models\nfrom models.shallow import SklearnKind\n"
        "from sklearn.linear_model import RidgeClassifier\n"
        "from team_utils import ALPHA\nfrom team_pkg import scale\nimport team_far\n"
        "models.register(SklearnKind('team_test_kind', classifier=RidgeClassifier))\n"
    )
    (tmp_path / "lib").mkdir()  # a helper of the user's in another folder: not shipped, said
    (tmp_path / "lib" / "team_far.py").write_text("B = 1\n")
    sys.path.insert(0, str(tmp_path / "lib"))
    try:
        _import_from(tmp_path, "team_kind")
        sys.path.insert(0, str(tmp_path))
        try:
            shipped = shipped_paths("team_kind")
        finally:
            sys.path.remove(str(tmp_path))
        names = sorted(p.name for p in shipped)
        assert names == ["team_consts.py", "team_kind.py", "team_pkg", "team_utils.py"], names
        (said,) = [r.getMessage() for r in caplog.records if "outside the kind's folder" in r.msg]
        assert said == (
            f"team_kind.py imports team_far from {tmp_path / 'lib'}, outside the kind's folder: "
            "a served model does not ship it; install it where the model is served, or move it "
            "beside team_kind.py"
        )
        assert shipped[0] == tmp_path / "team_kind.py"
        assert shipped_paths("models.shallow") == [Path(models_folder())]
    finally:
        sys.path.remove(str(tmp_path / "lib"))
        REGISTRY.pop("team_test_kind", None)
        for name in ("team_kind", "team_utils", "team_consts", "team_pkg", "team_far"):
            sys.modules.pop(name, None)


def models_folder() -> Path:
    import models

    return Path(models.__file__).parent


def test_only_a_users_kind_is_loaded_back_in_its_trial():
    """The round-trip check meant for users' kinds ran on every zoo kind too (their module
    is 'models'): each trial loaded its model a second time, a Keras net for seconds."""
    import toy_kind  # noqa: F401 - registers the toy kind

    from runner.trial import _users_kind

    assert not _users_kind("mlp") and not _users_kind("lightgbm") and not _users_kind("hgb")
    assert _users_kind("toy")
