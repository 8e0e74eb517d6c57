"""Training options: validation without Keras, and real (tiny) Keras training for each option."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pytest

from models.base import Task
from models.optimizers import KERAS_CLASSES, OPTIMIZER_OPTIONS, OPTIMIZERS
from models.schedules import SCHEDULES, build_learning_rate, piecewise_lr
from models.training import TrainingOptions

BINARY = Task("classification", n_classes=2)
REGRESSION = Task("regression")


@pytest.fixture(scope="module")
def data():
    """32 rows, 4 features: a learnable binary target and a regression target."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 4)).astype(np.float32)
    y_cls = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
    y_reg = (2 * X[:, 0] - X[:, 2]).astype(np.float32)
    return X, y_cls, y_reg


def mlp(task: Task, n_features: int = 4, outputs: int = 1):
    """A tiny functional model with ``outputs`` heads."""
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((n_features,))
    h = keras.layers.Dense(8, activation="relu")(x)
    heads = [
        keras.layers.Dense(task.n_classes, activation="softmax", name=f"out{i}")(h)
        if task.is_classification
        else keras.layers.Dense(1, name=f"out{i}")(h)
        for i in range(outputs)
    ]
    return keras.Model(x, heads if outputs > 1 else heads[0])


def train(options: TrainingOptions, data, task: Task = BINARY, **fit_kwargs):
    """Compile a fresh tiny model with ``options``, fit it; returns (model, history)."""
    from models.training import compile_model, fit_keras

    X, y_cls, y_reg = data
    y = y_cls if task.is_classification else y_reg
    model = compile_model(mlp(task), task, options, n_train_rows=len(X))
    return model, fit_keras(model, (X, y), (X, y), options, **fit_kwargs)


# ---- validation, without Keras -------------------------------------------------------------


def test_importing_the_training_modules_does_not_import_keras():
    code = (
        "import sys, models.training, models.schedules, models.optimizers, models.lr_finder; "
        "bad = [m for m in ('keras', 'tensorflow', 'matplotlib') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_defaults_keep_the_existing_behaviour_and_plain_names():
    options = TrainingOptions()
    assert (options.optimizer, options.schedule, options.learning_rate) == (
        "adam",
        "constant",
        1e-3,
    )
    assert (options.early_stopping, options.early_stopping_monitor) == (0, "val_loss")
    assert options.terminate_on_nan is True and options.tensorboard is False
    assert options.lr_finder is False and options.class_weight is None
    assert TrainingOptions(optimizer={"name": "adam"}) == TrainingOptions(optimizer="adam")
    assert TrainingOptions(schedule="exponential").schedule == {"name": "exponential", "s": None}
    assert TrainingOptions(lr_finder=True).lr_finder == {
        "min_lr": 1e-6,
        "max_lr": 1.0,
        "steps": 100,
    }


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"optimizer": {"name": "sgd", "momentum": 0.9, "nesterov": True}, "clipnorm": 1.0},
        {"schedule": {"name": "piecewise", "boundaries": [2, 5], "values": [1e-4, 1e-5]}},
        {"schedule": "onecycle", "class_weight": {1: 3.0, 0: 1.0}, "lr_finder": True},
        {"schedule": {"name": "plateau", "patience": 2}, "class_weight": "balanced"},
    ],
)
def test_as_params_is_flat_plain_and_round_trips(values):
    options = TrainingOptions(**values)
    params = options.as_params()
    plain = (str, int, float, bool, type(None))
    for key, value in params.items():
        assert isinstance(value, plain) or all(isinstance(v, plain) for v in value), (key, value)
    assert TrainingOptions.from_params(params) == options
    assert TrainingOptions.from_params(values) == options
    assert replace(options, epochs=3) == TrainingOptions(**{**values, "epochs": 3})


def test_as_params_names_options_with_dotted_keys():
    params = TrainingOptions(
        optimizer={"name": "adamw", "weight_decay": 0.01}, class_weight={0: 1.0, 1: 2.5}
    ).as_params()
    assert params["optimizer"] == "adamw" and params["optimizer.weight_decay"] == 0.01
    assert params["class_weight.1"] == 2.5 and "class_weight" not in params


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("optimizer", "adamm", r"optimizer must be one of \[.*'adamw'.*\], got 'adamm'"),
        ("optimizer", 3, r"optimizer must be a name \(one of .*\) .*got 3"),
        ("optimizer", {"momentum": 0.9}, r"needs a 'name' .*'momentum': 0.9"),
        (
            "optimizer",
            {"name": "sgd", "betas": 1},
            r"optimizer 'sgd' has no option 'betas'; allowed: momentum, nesterov, weight_decay",
        ),
        ("optimizer", {"name": "sgd", "momentum": 1.5}, r"optimizer.momentum .*\[0, 1\), got 1.5"),
        ("optimizer", {"name": "sgd", "nesterov": "yes"}, r"optimizer.nesterov .*got 'yes'"),
        ("optimizer", {"name": "adam", "epsilon": 0}, r"optimizer.epsilon must be .*> 0, got 0"),
        ("learning_rate", 0, r"learning_rate must be a number in \(0, 10\), got 0"),
        ("learning_rate", -0.1, r"learning_rate .*got -0.1"),
        ("schedule", "cosine", r"schedule must be one of \[.*'warmup_cosine'\], got 'cosine'"),
        (
            "schedule",
            {"name": "exponential", "decay": 2},
            r"schedule 'exponential' has no option 'decay'; allowed: s",
        ),
        ("schedule", {"name": "exponential", "s": 0}, r"schedule.s must be .*>= 1, got 0"),
        ("schedule", {"name": "power", "c": -1}, r"schedule.c must be a number > 0, got -1"),
        ("schedule", "piecewise", r"schedule 'piecewise' needs boundaries and values, got"),
        (
            "schedule",
            {"name": "piecewise", "boundaries": [5, 3], "values": [0.1, 0.01]},
            r"schedule.boundaries must be strictly increasing epochs, got \[5, 3\]",
        ),
        (
            "schedule",
            {"name": "piecewise", "boundaries": [5], "values": [0.1, 0.01]},
            r"one learning rate per boundary .*\[0.1, 0.01\]",
        ),
        ("schedule", {"name": "plateau", "factor": 1.5}, r"schedule.factor .*\(0, 1\), got 1.5"),
        ("schedule", {"name": "plateau", "monitor": "val_auc"}, r"schedule.monitor .*'val_auc'"),
        ("schedule", {"name": "onecycle", "max_lr": 1e-4}, r"schedule.max_lr must be > .*0.0001"),
        ("schedule", {"name": "warmup_cosine", "warmup_epochs": -1}, r"warmup_epochs .*got -1"),
        ("clipnorm", -1.0, r"clipnorm must be a number > 0 or null, got -1.0"),
        ("clipvalue", 0, r"clipvalue must be a number > 0 or null, got 0"),
        ("clipnorm", "big", r"clipnorm .*got 'big'"),
        ("class_weight", "balance", r"class_weight must be null, 'balanced' or .*got 'balance'"),
        ("class_weight", [1, 2], r"class_weight .*got \[1, 2\]"),
        ("class_weight", {0: -1.0}, r"class_weight\[0\] must be a number > 0, got -1.0"),
        ("class_weight", {"a": 1.0}, r"class ids >= 0 \(a class's place from 0 .*got 'a'"),
        ("early_stopping", -1, r"early_stopping must be an integer >= 0, got -1"),
        ("early_stopping_monitor", "val_f1", r"early_stopping_monitor .*got 'val_f1'"),
        ("terminate_on_nan", "yes", r"terminate_on_nan must be true or false, got 'yes'"),
        ("tensorboard", 1, r"tensorboard must be true or false, got 1"),
        ("lr_finder", "auto", r"lr_finder must be true, false or a mapping .*got 'auto'"),
        ("lr_finder", {"min_lr": 1.0, "max_lr": 0.1}, r"lr_finder.max_lr must be > .*got 0.1"),
        ("lr_finder", {"steps": 1}, r"lr_finder.steps must be an integer >= 2, got 1"),
        ("lr_finder", {"start": 1}, r"lr_finder has no option 'start'; allowed: max_lr"),
        ("steps_per_execution", 0, r"steps_per_execution must be 'epoch' or .*>= 1, got 0"),
        ("steps_per_execution", "auto", r"steps_per_execution must be .*got 'auto'"),
        ("steps_per_execution", True, r"steps_per_execution must be .*got True"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_value(field, value, message):
    with pytest.raises(ValueError, match=message) as err:
        TrainingOptions(**{field: value})
    assert "\n" not in str(err.value)


def test_optimizer_options_match_keras_signatures():
    import keras

    signatures = {
        name: set(inspect.signature(getattr(keras.optimizers, cls)).parameters)
        for name, cls in KERAS_CLASSES.items()
    }
    shared = set.intersection(*signatures.values())  # learning_rate, clipping, EMA, name, ...
    assert "weight_decay" in shared
    for name, params in signatures.items():
        assert set(OPTIMIZER_OPTIONS[name]) == (params - shared) | {"weight_decay"}, name


# ---- optimisers and clipping ----------------------------------------------------------------

OPTIMIZER_EXAMPLES = {
    "sgd": {"momentum": 0.9, "nesterov": True},
    "adagrad": {"initial_accumulator_value": 0.2},
    "rmsprop": {"rho": 0.8, "momentum": 0.5},
    "adam": {"beta_1": 0.8, "beta_2": 0.99},
    "adamax": {"beta_1": 0.85},
    "nadam": {"beta_2": 0.98},
    "adamw": {"weight_decay": 0.01},
}


def test_every_optimizer_has_an_example():
    assert set(OPTIMIZER_EXAMPLES) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_compiles_and_trains_an_epoch_with_its_options(name, data):
    options = TrainingOptions(
        epochs=1, batch_size=16, optimizer={"name": name, **OPTIMIZER_EXAMPLES[name]}
    )
    model, history = train(options, data)
    assert type(model.optimizer).__name__ == KERAS_CLASSES[name]
    for key, value in OPTIMIZER_EXAMPLES[name].items():
        assert getattr(model.optimizer, key) == pytest.approx(value), key
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"]).all()


@pytest.mark.parametrize("task", [BINARY, REGRESSION])
def test_a_whole_epoch_per_call_makes_the_same_updates_as_one_batch_per_call(task, data):
    """steps_per_execution changes how often Python is entered, not the optimiser's steps:
    the default (a whole epoch, here ceil(32 / 5) = 7 batches, the last one partial) ends
    with the weights, history and learning-rate log of one batch per call."""
    base = TrainingOptions(epochs=3, batch_size=5, schedule={"name": "exponential", "s": 4})
    assert base.steps_per_execution == "epoch"
    fast, fast_history = train(base, data, task)
    slow, slow_history = train(replace(base, steps_per_execution=1), data, task)
    assert (fast.steps_per_execution, slow.steps_per_execution) == (7, 1)
    for a, b in zip(fast.get_weights(), slow.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert fast_history.keys() == slow_history.keys()
    for key in slow_history:
        np.testing.assert_allclose(fast_history[key], slow_history[key], rtol=1e-5, atol=1e-6)


def test_clipnorm_and_clipvalue_reach_the_optimizer(data):
    model, _ = train(TrainingOptions(epochs=1, clipnorm=0.5), data)
    assert model.optimizer.clipnorm == 0.5 and model.optimizer.clipvalue is None
    model, _ = train(TrainingOptions(epochs=1, clipvalue=0.1), data)
    assert model.optimizer.clipvalue == 0.1 and model.optimizer.clipnorm is None


# ---- schedules ------------------------------------------------------------------------------


def schedule_values(schedule, learning_rate, steps, epochs=10, steps_per_epoch=10):
    """The built schedule's learning rate at each of ``steps``."""
    import keras

    options = TrainingOptions(learning_rate=learning_rate, schedule=schedule)
    lr = build_learning_rate(
        options.schedule, learning_rate, epochs=epochs, steps_per_epoch=steps_per_epoch
    )
    return np.array([float(keras.ops.convert_to_numpy(lr(s))) for s in steps])


def test_every_schedule_is_documented_and_tested():
    assert set(SCHEDULES) == {
        "constant",
        "power",
        "exponential",
        "piecewise",
        "plateau",
        "onecycle",
        "warmup_cosine",
    }


def test_constant_schedule_records_the_rate_every_epoch(data):
    _, history = train(TrainingOptions(epochs=2, batch_size=16, learning_rate=0.02), data)
    assert history["lr"] == pytest.approx([0.02, 0.02])


def test_exponential_divides_by_ten_every_s_steps(data):
    values = schedule_values({"name": "exponential", "s": 7}, 0.1, [0, 7, 14, 21])
    np.testing.assert_allclose(values, [0.1, 0.01, 0.001, 0.0001], rtol=1e-5)
    # 32 rows / batch 16 = 2 steps per epoch, s = 2 steps: ten times smaller each epoch
    options = TrainingOptions(
        epochs=3, batch_size=16, learning_rate=0.1, schedule={"name": "exponential", "s": 2}
    )
    _, history = train(options, data)
    np.testing.assert_allclose(history["lr"], [0.1, 0.01, 0.001], rtol=1e-5)


def test_power_scheduling_follows_hands_on_ml():
    import keras

    steps = [0, 5, 20, 60]
    values = schedule_values({"name": "power", "s": 20, "c": 2.0}, 0.1, steps)
    np.testing.assert_allclose(values, [0.1 / (1 + t / 20) ** 2 for t in steps], rtol=1e-5)
    # c = 1 is Keras' InverseTimeDecay; s left null is the whole run (10 epochs x 10 steps)
    inverse = keras.optimizers.schedules.InverseTimeDecay(0.1, 100, 1.0)
    expected = [float(inverse(t)) for t in steps]
    np.testing.assert_allclose(schedule_values("power", 0.1, steps), expected, rtol=1e-5)


def test_piecewise_switches_at_the_boundary_epochs(data):
    schedule = {"name": "piecewise", "boundaries": [1, 3], "values": [0.01, 0.001]}
    options = TrainingOptions(epochs=4, batch_size=16, learning_rate=0.1, schedule=schedule)
    _, history = train(options, data)
    np.testing.assert_allclose(history["lr"], [0.1, 0.01, 0.01, 0.001], rtol=1e-6)
    assert piecewise_lr(0, learning_rate=0.1, boundaries=(1, 3), values=(0.01, 0.001)) == 0.1


def test_plateau_reduces_after_patience_epochs_without_improvement(data):
    # a rate this small leaves val_loss flat (under ReduceLROnPlateau's min_delta)
    schedule = {"name": "plateau", "factor": 0.5, "patience": 2}
    options = TrainingOptions(
        epochs=6, batch_size=16, optimizer="sgd", learning_rate=1e-7, schedule=schedule
    )
    _, history = train(options, data)
    # epochs 2 and 3 (1-based) do not improve: halved from epoch 4; 4 and 5 do not: again
    np.testing.assert_allclose(history["lr"], [1e-7] * 3 + [5e-8] * 2 + [2.5e-8], rtol=1e-5)


def test_onecycle_rises_to_max_lr_mid_way_then_falls_to_a_small_fraction():
    schedule = {"name": "onecycle", "max_lr": 1.0, "last_fraction": 0.1}
    steps = np.arange(100)  # 10 epochs x 10 steps: 10 final steps, 45-step halves
    values = schedule_values(schedule, 0.1, steps)
    assert values[0] == pytest.approx(0.1)
    assert int(np.argmax(values)) == 45 and values.max() == pytest.approx(1.0)
    assert (np.diff(values[:46]) > 0).all() and (np.diff(values[45:]) < 0).all()
    assert values[90] == pytest.approx(0.1, rel=1e-4)
    assert values[-1] < 0.02 and values[-1] >= 0.1 * 0.001


def test_onecycle_default_peak_is_ten_times_the_learning_rate(data):
    options = TrainingOptions(epochs=4, batch_size=16, learning_rate=0.01, schedule="onecycle")
    _, history = train(options, data)
    assert max(history["lr"]) > 0.05 and history["lr"][0] == pytest.approx(0.01)
    assert max(schedule_values("onecycle", 0.01, range(100))) == pytest.approx(0.1)


def test_warmup_cosine_rises_then_falls():
    schedule = {"name": "warmup_cosine", "warmup_epochs": 2, "alpha": 0.1}
    values = schedule_values(schedule, 0.1, [0, 10, 20, 60, 100])
    np.testing.assert_allclose(values[:3], [0.0, 0.05, 0.1], atol=1e-6)
    assert values[2] > values[3] > values[4]
    assert values[4] == pytest.approx(0.01, rel=1e-4)  # alpha * learning_rate at the end


def test_step_schedules_need_the_number_of_training_rows(data):
    from models.training import compile_model

    with pytest.raises(ValueError, match="schedule 'onecycle' needs the steps per epoch"):
        compile_model(mlp(BINARY), BINARY, TrainingOptions(schedule="onecycle"))


@pytest.mark.parametrize("schedule", ["power", "onecycle"])
def test_own_schedules_survive_saving_and_loading(schedule, tmp_path):
    import keras

    from models.training import compile_model

    options = TrainingOptions(schedule=schedule)
    model = compile_model(mlp(BINARY), BINARY, options, n_train_rows=32)
    model.optimizer.build(model.trainable_variables)  # as after training: state to save
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    before = model.optimizer._learning_rate  # the schedule object; Keras has no public getter
    after = loaded.optimizer._learning_rate
    assert type(after) is type(before) and after.get_config() == before.get_config()


# ---- class weights, early stopping, NaN, TensorBoard ----------------------------------------


def test_balanced_class_weight_matches_scikit_learn_and_changes_the_loss(data):
    from models.training import class_weights

    X, _, _ = data
    y = np.array([0] * 28 + [1] * 4)
    assert class_weights(y, "balanced") == pytest.approx({0: 32 / 56, 1: 32 / 8})
    assert class_weights(y, {1: 2.0}) == {0: 1.0, 1: 2.0}
    losses = []
    for class_weight in (None, "balanced"):
        options = TrainingOptions(epochs=1, batch_size=32, class_weight=class_weight)
        losses.append(train(options, (X, y, None))[1]["loss"][0])
    assert losses[0] != pytest.approx(losses[1], rel=1e-3)


def test_class_weight_is_refused_for_regression(data):
    with pytest.raises(ValueError, match="class_weight is for classification only, got 'bal"):
        train(TrainingOptions(epochs=1, class_weight="balanced"), data, REGRESSION)


def test_early_stopping_watches_the_configured_monitor(data):
    options = TrainingOptions(
        epochs=50,
        learning_rate=0.05,
        early_stopping=2,
        early_stopping_monitor="val_accuracy",
    )
    _, history = train(options, data)
    assert len(history["val_accuracy"]) < 50
    bad = TrainingOptions(epochs=1, early_stopping=2, early_stopping_monitor="val_rmse")
    with pytest.raises(ValueError, match="early_stopping_monitor 'val_rmse' is not logged"):
        train(bad, data)


@pytest.mark.parametrize(
    "values, mode, settings, kept",
    [
        ([1.0, 0.5, 0.48, 0.6], "min", {}, 2),
        ([1.0, 0.5, 0.48, 0.6], "min", {"min_delta": 0.05}, 1),
        ([1.0, 0.5, 0.48, 0.6], "min", {"start_from_epoch": 3}, 3),
        ([1.0, 0.5, 0.48, 0.6], "min", {"start_from_epoch": 4}, None),
        ([0.5, 0.7, 0.7, 0.6], "max", {}, 1),
        ([float("nan"), 0.5], "min", {}, 0),
        ([0.5, float("nan"), 0.4], "min", {}, 2),
    ],
)
def test_kept_epoch_applies_keras_early_stopping_rules(values, mode, settings, kept):
    from models.training import kept_epoch

    assert kept_epoch(values, mode, **settings) == kept


def test_kept_epoch_is_the_epoch_keras_early_stopping_restores(data):
    """Against the real callback, with patience that never runs out: Keras restores its best
    epoch at the end of training all the same, and kept_epoch names that epoch."""
    import keras

    from models.training import compile_model, kept_epoch

    X, y, _ = data
    flip = np.random.default_rng(3).random(len(y)) < 0.25  # noisy labels: a bumpy val_loss
    cases = [
        {},
        {"min_delta": 0.06},
        {"start_from_epoch": 1},
        {"start_from_epoch": 3},
        {"start_from_epoch": 20},
        {"baseline": 0.1},
        {"monitor": "val_accuracy", "mode": "max", "min_delta": 0.15},
    ]
    cases = [{"monitor": "val_loss", "mode": "min", **case} for case in cases]
    stops = [
        keras.callbacks.EarlyStopping(patience=100, restore_best_weights=True, **case)
        for case in cases
    ]
    options = TrainingOptions(learning_rate=0.1, optimizer={"name": "sgd", "momentum": 0.9})
    model = compile_model(mlp(BINARY), BINARY, options, n_train_rows=len(X))
    history = model.fit(
        X,
        y,
        validation_data=(X, np.where(flip, 1 - y, y)),
        epochs=12,
        batch_size=8,
        verbose=0,
        callbacks=stops,
    ).history
    restored = [s.best_epoch if s.best_weights is not None else None for s in stops]
    assert len(set(restored)) > 2, "the cases should keep different epochs"
    for case, keras_kept in zip(cases, restored, strict=True):
        watched = {k: case[k] for k in ("min_delta", "start_from_epoch") if k in case}
        assert kept_epoch(history[case["monitor"]], case["mode"], **watched) == keras_kept, case


@pytest.mark.parametrize("terminate", [True, False])
def test_terminate_on_nan_stops_a_run_whose_loss_goes_nan(terminate, data):
    X, y, _ = data
    X = X.copy()
    X[0, 0] = np.inf
    options = TrainingOptions(epochs=3, batch_size=8, terminate_on_nan=terminate)
    _, history = train(options, (X, y, None))
    assert np.isnan(history["loss"][0])
    assert len(history["loss"]) == (1 if terminate else 3)


def test_tensorboard_writes_event_files_into_the_log_dir(data, tmp_path):
    options = TrainingOptions(epochs=2, batch_size=16, tensorboard=True)
    train(options, data, log_dir=str(tmp_path / "tb"))
    for part in ("train", "validation"):
        assert list((tmp_path / "tb" / part).glob("events.out.tfevents*")), part
    with pytest.warns(UserWarning, match="no log_dir"):
        train(TrainingOptions(epochs=1, tensorboard=True), data)


def test_tensorboard_without_a_writer_package_fails_validation(monkeypatch):
    import models.training

    monkeypatch.setattr(models.training, "tensorboard_writer", lambda: None)
    with pytest.raises(ValueError, match="tensorboard is true but neither"):
        TrainingOptions(tensorboard=True)
    assert TrainingOptions(tensorboard=False).tensorboard is False


# ---- multi-output models --------------------------------------------------------------------


def test_multi_output_models_share_loss_and_metric_and_predict_the_main_output(data):
    from models.training import compile_model, fit_keras, predict

    X, y, _ = data
    options = TrainingOptions(
        epochs=2,
        batch_size=16,
        class_weight="balanced",
        early_stopping=1,
        early_stopping_monitor="val_accuracy",
        schedule={"name": "plateau", "monitor": "accuracy"},
    )
    model = compile_model(mlp(BINARY, outputs=2), BINARY, options, loss_weights=[0.8, 0.2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = fit_keras(model, (X, (y, y)), (X, (y, y)), options)
    # Keras only warns when a monitored metric is missing from the logs
    assert not [w for w in caught if "not available" in str(w.message)]
    assert {"out0_accuracy", "out1_accuracy", "val_out0_loss", "lr"} <= set(history)
    pred = predict(model, X, BINARY)
    assert pred.shape == (32, 2)
    np.testing.assert_allclose(pred, model.predict(X, verbose=0)[0], rtol=1e-6)


# ---- learning-rate finder -------------------------------------------------------------------


def finder_model(options: TrainingOptions | None = None):
    from models.training import compile_model

    return compile_model(mlp(BINARY), BINARY, options or TrainingOptions())


def test_lr_finder_sweeps_increasing_rates_and_suggests_one_inside_the_range(data, tmp_path):
    import matplotlib.image

    from models.training import find_learning_rate, plot_lr_finder

    X, y, _ = data
    result = find_learning_rate(
        finder_model, (X, y), min_lr=1e-4, max_lr=1.0, steps=30, batch_size=8
    )
    lrs = np.array(result.lrs)
    assert len(lrs) == len(result.losses) >= 10 and (np.diff(lrs) > 0).all()
    assert lrs[0] == pytest.approx(1e-4)
    assert 1e-4 <= result.suggestion <= 1.0
    best = result.lrs[int(np.argmin(result.losses))]
    assert result.suggestion == pytest.approx(max(1e-4, best / 10))
    path = plot_lr_finder(result, tmp_path / "plots" / "lr_finder.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100


def test_lr_finder_stops_when_the_loss_explodes(data):
    from models.training import find_learning_rate

    X, y, _ = data
    sgd = TrainingOptions(optimizer="sgd")
    result = find_learning_rate(
        lambda: finder_model(sgd), (X * 100, y), min_lr=1e-3, max_lr=1e6, steps=60, batch_size=8
    )
    assert result.diverged and len(result.lrs) < 60
    assert all(math.isfinite(v) for v in result.losses)


def test_lr_finder_overrides_a_schedule_and_feeds_every_output(data):
    from models.training import compile_model, find_learning_rate

    X, y, _ = data
    scheduled = TrainingOptions(schedule="onecycle", clipnorm=1.0)

    def build():
        model = mlp(BINARY, outputs=2)
        return compile_model(model, BINARY, scheduled, n_train_rows=32, loss_weights=[0.8, 0.2])

    result = find_learning_rate(build, (X, y), min_lr=1e-3, max_lr=0.1, steps=5, batch_size=8)
    assert len(result.lrs) == 5
    np.testing.assert_allclose(result.lrs, np.geomspace(1e-3, 0.1, 5), rtol=1e-6)


def test_served_keras_members_predict_without_retracing_warnings(tmp_path, caplog):
    """Several loaded members, each tracing its predict step for each new batch shape, made
    TensorFlow warn of "retracing" on every served request."""
    import keras

    from models.keras_kind import load_keras
    from models.training import predict

    loaded = []
    for i in range(3):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "softmax")])
        model.save(tmp_path / f"m{i}.keras")
        loaded.append(load_keras(tmp_path / f"m{i}.keras"))
    task = Task("classification", n_classes=3)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for rows in (50, 1, 10, 7):
            for model in loaded:
                assert predict(model, np.zeros((rows, 4), np.float32), task).shape == (rows, 3)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_a_member_whose_lr_finder_found_no_turn_says_so_and_records_it(data, tmp_path):
    """A loss still falling at the last rate tried gives a suggestion of a tenth of the
    range's top, which nothing flagged; lr_finder.json lacked whether it diverged."""
    import json

    from models import REGISTRY
    from models.base import InputSpec

    X, y, _ = data
    options = TrainingOptions(
        epochs=1, batch_size=32, lr_finder={"min_lr": 1e-3, "max_lr": 1e-2, "steps": 10}
    )
    with pytest.warns(UserWarning, match=r"lr_finder: the loss still fell at the last rate"):
        REGISTRY["mlp"].train(
            InputSpec(4), BINARY, {}, (X, y), (X, y), options, seed=0, workdir=tmp_path
        )
    saved = json.loads((tmp_path / "lr_finder.json").read_text())
    assert saved["still_falling"] is True and saved["diverged"] is False
