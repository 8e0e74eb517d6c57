"""Registry contract: every model validates, builds, trains and predicts in the members' format.

New registry entries are picked up automatically.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import models
from models import REGISTRY
from models.base import InputSpec, Task
from models.training import TrainingOptions

CLASSES = Task("classification", n_classes=3)
REGRESSION = Task("regression")


@pytest.fixture(scope="module")
def tiny():
    """48 rows of 4x4 'images' with 3 classes and a regression target."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 16)).astype(np.float32)
    y_cls = np.arange(48) % 3
    X[:, 0] += 3 * y_cls  # make the task learnable
    y_reg = X[:, 0] * 0.5 + rng.normal(0, 0.1, 48)
    spec = InputSpec(16, image_shape=(4, 4, 1), mean=X.mean(0), variance=X.var(0))
    return spec, X, y_cls, y_reg


def test_unknown_model_fails_with_the_known_names():
    with pytest.raises(ValueError, match=r"unknown model 'nope'; known models: .*mlp.*selu"):
        models.get("nope")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_default_hparams_validate(name):
    entry = REGISTRY[name]
    task = CLASSES if entry.supports(CLASSES) else REGRESSION
    assert isinstance(entry.check({}, task), dict)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_unknown_hparam_is_named_with_the_allowed_ones(name):
    entry = REGISTRY[name]
    task = CLASSES if entry.supports(CLASSES) else REGRESSION
    with pytest.raises(ValueError, match=rf"model '{name}' has no hyperparameter 'bogus'; allowed"):
        entry.check({"bogus": 1}, task)


@pytest.mark.parametrize(
    "name, hparams, received",
    [
        ("mlp", {"depth": 0}, "got 0"),
        ("mlp", {"activation": "sigmoidish"}, "got 'sigmoidish'"),
        ("mlp", {"dropout": 1.5}, "got 1.5"),
        ("selu", {"width": -3}, "got -3"),
        ("convnet", {"filters": []}, r"got \[\]"),
        ("convnet", {"batch_norm": "middle"}, "got 'middle'"),
        ("logistic", {"C": -1.0}, "Got -1.0"),
    ],
)
def test_invalid_hparam_values_name_the_value(name, hparams, received):
    with pytest.raises(ValueError, match=received):
        REGISTRY[name].check(hparams, CLASSES)


def test_models_package_imports_neither_keras_nor_ray_mlflow_hydra():
    code = (
        "import sys, models, models.training; "
        "bad = [m for m in ('keras', 'tensorflow', 'ray', 'mlflow', 'hydra') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


KERAS = sorted(n for n, e in REGISTRY.items() if e.kind == "keras")
SKLEARN = sorted(n for n, e in REGISTRY.items() if e.kind == "sklearn")


@pytest.mark.parametrize("name", KERAS)
@pytest.mark.parametrize("task", [CLASSES, REGRESSION], ids=["classification", "regression"])
def test_keras_builders_train_and_predict_in_the_members_format(name, task, tiny):
    import keras

    from models.training import compile_model, fit_keras, predict

    spec, X, y_cls, y_reg = tiny
    y = y_cls if task.is_classification else y_reg
    keras.utils.set_random_seed(0)
    model = REGISTRY[name].build(spec, task)
    assert isinstance(model, keras.Model)
    assert all(layer.name for layer in model.layers)
    compile_model(model, task, TrainingOptions(epochs=2, batch_size=16))
    history = fit_keras(model, (X, y), (X, y), TrainingOptions(epochs=2, batch_size=16))
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
    pred = predict(model, X, task)
    if task.is_classification:
        assert pred.shape == (48, 3)
        np.testing.assert_allclose(pred.sum(axis=1), 1.0, rtol=1e-5)
    else:
        assert pred.shape == (48,)


def test_convnet_refuses_flat_features(tiny):
    _, X, _, _ = tiny
    with pytest.raises(ValueError, match="needs image data"):
        REGISTRY["convnet"].build(InputSpec(16), CLASSES)


def test_early_stopping_restores_best_weights(tiny):
    import keras

    from models.training import compile_model, fit_keras

    spec, X, y, _ = tiny
    keras.utils.set_random_seed(0)
    options = TrainingOptions(epochs=200, batch_size=16, learning_rate=0.05, early_stopping=2)
    model = compile_model(REGISTRY["mlp"].build(spec, CLASSES), CLASSES, options)
    history = fit_keras(model, (X, y), (X[:12], y[:12]), options)
    assert len(history["loss"]) < 200
    best = min(history["val_loss"])
    assert model.evaluate(X[:12], y[:12], verbose=0)[0] == pytest.approx(best, rel=1e-4)


@pytest.mark.parametrize("name", SKLEARN)
def test_shallow_members_fit_and_predict_in_the_members_format(name, tiny):
    from models.shallow import predict, seed_estimator

    spec, X, y_cls, y_reg = tiny
    entry = REGISTRY[name]
    for task, y in ((CLASSES, y_cls), (REGRESSION, y_reg)):
        if not entry.supports(task):
            continue
        est = seed_estimator(entry.build(spec, task), 0).fit(X, y)
        pred = predict(est, X, task)
        assert pred.shape == ((48, 3) if task.is_classification else (48,))


@pytest.mark.parametrize(
    "field, value, received",
    [
        ("epochs", 0, "epochs must be an integer >= 1, got 0"),
        ("optimizer", "adamm", "optimizer must be one of"),
        ("learning_rate", 0, "learning_rate must be > 0, got 0"),
    ],
)
def test_training_options_reject_bad_values(field, value, received):
    with pytest.raises(ValueError, match=received):
        TrainingOptions(**{field: value})
