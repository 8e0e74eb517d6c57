"""Registry contract: every model validates, builds, trains and predicts in the members' format.

New registry entries are picked up automatically.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import warnings

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
def test_example_hparams_validate(name, tiny, tmp_path):
    spec = tiny[0]
    entry = REGISTRY[name]
    task = CLASSES if entry.supports(CLASSES) else REGRESSION
    hparams = entry.example_hparams(tmp_path, spec, task)
    assert isinstance(entry.check(hparams, task), dict)
    entry.check_input(hparams, spec)


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
        ("convnet", {"separable": "nope"}, "separable must be true or false, got 'nope'"),
        ("convnet", {"residual": "maybe"}, "residual must be true or false, got 'maybe'"),
        ("convnet", {"global_pool": "no"}, "global_pool must be true or false, got 'no'"),
        ("convnet", {"separable": 1}, "separable must be true or false, got 1"),
        ("wide_deep", {"aux_output": "no"}, "aux_output must be true or false, got 'no'"),
        ("convnet", {"augment": "yes"}, "augment must be null, true or a mapping .*got 'yes'"),
        ("convnet", {"augment": {"shear": 0.1}}, "augment has no option 'shear'; allowed: flip"),
        ("convnet", {"augment": {"translate": 1.5}}, r"augment.translate .*got 1.5"),
        ("convnet", {"augment": {"flip": "diagonal"}}, "augment.flip must be one of .*'diagonal'"),
        ("convnet", {"tta": True}, "tta averages .* set augment with a flip .*got augment=None"),
        ("logistic", {"C": -1.0}, "Got -1.0"),
        ("mlp", {"initializer": {"mode": "fan_middle"}}, "got 'fan_middle'"),
        ("mlp", {"batch_norm": "sideways"}, "got 'sideways'"),
        ("mlp", {"max_norm": 0}, r"max_norm must be a number in \(0, 1e6\) or null, got 0"),
        ("mlp", {"max_norm": -1}, r"max_norm must be a number in \(0, 1e6\) or null, got -1"),
        ("wide_deep", {"loss_weights": [1.0]}, r"got \[1.0\]"),
        ("wide_deep", {"loss_weights": [0, 1]}, r"main output's weight .* > 0, got \[0, 1\]"),
        ("wide_deep", {"wide": []}, r"got \[\]"),
        ("mc_dropout", {"dropout": 0.0}, "dropout must be > 0 for MC dropout, got 0.0"),
        ("transfer", {}, "base must be a .keras file path, STAGE.MEMBER of an earlier stage"),
        ("transfer", {"base": "x.keras", "unfreeze": -1}, "got -1"),
        ("transfer", {"base": "applications:VGG99"}, r"must be one of \['EfficientNetB0'"),
        ("transfer", {"base": "applications:MobileNetV2", "image_size": 16}, "got 16"),
        ("transfer", {"base": "applications:MobileNetV2", "pixel_max": 0}, "got 0"),
        # the boosters' libraries check values only when they fit: on made-up rows, at once
        ("lightgbm", {"num_leaves": -1}, "lightgbm refuses these settings: .*num_leaves"),
        ("xgboost", {"max_depth": -2}, "xgboost refuses these settings: .*max_depth"),
        ("catboost", {"depth": 50}, "catboost refuses these settings: .*depth is 16"),
    ],
)
def test_invalid_hparam_values_name_the_value(name, hparams, received):
    with pytest.raises(ValueError, match=received):
        REGISTRY[name].check(hparams, CLASSES)


@pytest.mark.parametrize(
    "name, hparams, task",
    [
        # valid where the trial runs: a GPU node, the real columns, validation rows
        ("catboost", {"task_type": "GPU", "bootstrap_type": "Poisson"}, CLASSES),
        ("xgboost", {"device": "cuda"}, CLASSES),
        ("xgboost", {"monotone_constraints": "(1,0,0,0,-1)"}, REGRESSION),
        ("catboost", {"use_best_model": True, "early_stopping_rounds": 50}, CLASSES),
        ("lightgbm", {"min_child_samples": 100, "class_weight": "balanced"}, CLASSES),
        # objectives for positive targets, and settings sized to many classes
        ("xgboost", {"objective": "reg:gamma"}, REGRESSION),
        ("lightgbm", {"objective": "poisson"}, REGRESSION),
        ("catboost", {"class_weights": [1.0] * 40}, Task("classification", n_classes=40)),
    ],
)
def test_booster_checks_accept_settings_valid_on_the_trials_machine(name, hparams, task):
    assert REGISTRY[name].check(hparams, task) == hparams


def test_models_package_imports_neither_keras_nor_ray_mlflow_hydra():
    code = (
        "import sys, models, models.training; "
        "bad = [m for m in ('keras', 'tensorflow', 'ray', 'mlflow', 'hydra') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


CASES = [
    (name, task)
    for name in sorted(REGISTRY)
    for task in (CLASSES, REGRESSION)
    if REGISTRY[name].supports(task)
]
CASE_IDS = [f"{name}-{task.kind}" for name, task in CASES]
# the fresh process loads every saved member from another directory and predicts
FRESH_LOAD = """
import json, sys
import numpy as np
import models
from models.base import Task
X = np.load(sys.argv[1])
out = {}
for case, folder, kind, n_classes in json.loads(sys.argv[2]):
    member = models.load_member(folder)
    out[case] = member.predict(X, Task(kind, n_classes)).tolist()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """Every registry entry, for every task it supports: built with its example
    hyperparameters, fitted two epochs through ``fit``, its predictions, and saved with
    ``models.save_member``; then one fresh Python process, started in another directory,
    loads every saved member and predicts the same rows."""
    import keras

    spec, X, y_cls, y_reg = tiny
    root = tmp_path_factory.mktemp("contract")
    out = {}
    for (name, task), case in zip(CASES, CASE_IDS, strict=True):
        entry = REGISTRY[name]
        y = y_cls if task.is_classification else y_reg
        keras.utils.set_random_seed(0)
        hparams = entry.example_hparams(root, spec, task)
        model = entry.build(spec, task, **hparams)
        epochs = []
        history = entry.fit(
            model,
            task,
            (X, y),
            (X, y),
            TrainingOptions(epochs=2, batch_size=16),
            hparams,
            seed=0,
            on_epoch=lambda epoch, logs, seen=epochs: seen.append((epoch, logs)),
        )
        keras.utils.set_random_seed(1)  # MC dropout samples its passes: same seed both sides
        pred = entry.predict(model, X, task)
        folder = models.save_member(name, model, root / case)
        out[case] = {"history": history, "epochs": epochs, "pred": pred, "folder": folder}
    np.save(root / "X.npy", X)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    jobs = [
        [c, str(out[c]["folder"]), t.kind, t.n_classes]
        for (_, t), c in zip(CASES, CASE_IDS, strict=True)
    ]
    prelude = "import keras; keras.utils.set_random_seed(1)\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + FRESH_LOAD, str(root / "X.npy"), json.dumps(jobs)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    for case in out:
        out[case]["fresh"] = np.array(fresh[case])
    return out


@pytest.mark.parametrize("case", CASE_IDS)
def test_every_kind_fits_predicts_saves_and_loads_in_a_fresh_process(case, trained):
    """The common contract over ``models.REGISTRY`` (like scikit-learn's check_estimator):
    fit reports each epoch and returns a finite history, predictions have the members'
    shape, and a fresh process in another directory predicts the same values."""
    name, task = CASES[CASE_IDS.index(case)]
    got = trained[case]
    assert got["history"] and all(np.isfinite(v).all() for v in got["history"].values())
    assert [e for e, _ in got["epochs"]] == list(range(1, len(got["history"]["loss"]) + 1))
    pred = got["pred"]
    if task.is_classification:
        assert pred.shape == (48, 3)
        np.testing.assert_allclose(pred.sum(axis=1), 1.0, rtol=1e-5)
    else:
        assert pred.shape == (48,)
    np.testing.assert_allclose(got["fresh"], pred, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_kind_states_its_defaults_and_framework(name):
    entry = REGISTRY[name]
    task = CLASSES if entry.supports(CLASSES) else REGRESSION
    assert entry.name == name and entry.framework in ("keras", "sklearn", "boosters")
    assert isinstance(entry.defaults(task), dict) and entry.defaults(task)
    if name != "transfer":  # its base has no default: the user names one
        entry.check(entry.defaults(task), task)  # LightGBM's verbose, XGBoost's missing=nan


def test_a_tampered_saved_member_is_refused(trained, tmp_path):
    import shutil

    # a copy: the module's other tests read the trained folder as it was saved
    folder = shutil.copytree(trained["logistic-classification"]["folder"], tmp_path / "lr")
    model_file = next(p for p in folder.iterdir() if p.name != "kind.json")
    model_file.write_bytes(model_file.read_bytes() + b"x")
    with pytest.raises(models.store.ArtifactError, match="sha256 is .* the manifest recorded"):
        models.load_member(folder)


def test_every_file_of_a_saved_member_is_pinned_and_its_kinds_module_not_taken_from_it(
    trained, tmp_path
):
    """A booster's estimator.txt (which class reads its model) was in no manifest: edited, a
    classifier loaded as a regressor; and a kind.json naming a module found inside the
    member's own folder imported that file before refusing the kind."""
    import shutil

    folder = shutil.copytree(trained["catboost-classification"]["folder"], tmp_path / "cb")
    models.store.verify_member(folder)
    listed = json.loads((folder / "kind.json").read_text())["files"]
    assert set(listed) == {"estimator.txt"}
    (folder / "estimator.txt").write_text("regression")
    for check in (models.store.verify_member, models.load_member):
        with pytest.raises(models.store.ArtifactError, match=r"estimator.txt: its sha256 is"):
            check(folder)
    planted = shutil.copytree(trained["logistic-classification"]["folder"], tmp_path / "lr")
    (planted / "evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    manifest = json.loads((planted / "kind.json").read_text())
    (planted / "kind.json").write_text(json.dumps({**manifest, "kind": "lr2", "module": "evil"}))
    import sys

    sys.path.insert(0, str(planted))
    try:
        with pytest.raises(models.store.ArtifactError, match=r"looked for inside the saved"):
            models.load_member(planted)
        # a package's __init__ would run while a dotted name is looked up: refused first
        (planted / "evilpkg").mkdir()
        (planted / "evilpkg" / "__init__.py").write_text((planted / "evil.py").read_text())
        (planted / "kind.json").write_text(
            json.dumps({**manifest, "kind": "lr2", "module": "evilpkg.kinds"})
        )
        with pytest.raises(models.store.ArtifactError, match=r"looked for inside the saved"):
            models.load_member(planted)
    finally:
        sys.path.remove(str(planted))
    assert not (tmp_path / "ran").exists()
    # a kind whose module is not importable here: one line naming kind, module and the cure
    (planted / "kind.json").write_text(
        json.dumps({**manifest, "kind": "lr2", "module": "no_such_kinds.sub"})
    )
    with pytest.raises(ModuleNotFoundError) as err:
        models.load_member(planted)
    assert str(err.value) == (
        f"model kind 'lr2' of {planted} is registered by module 'no_such_kinds.sub', which is "
        "not importable here: put its folder on PYTHONPATH (a served ensemble ships it)"
    )


def test_a_raw_column_named_in_wide_or_deep_brings_its_missing_flag_and_date_parts():
    """A column with missing values gave ``age`` alone, its ``age:missing`` flag left out."""
    from models.base import InputSpec
    from models.wide_deep import column_indices

    names = ("age", "age:missing", "d:year", "d:month", "color=red", "color=__rare__", "x")
    spec = InputSpec(n_features=len(names), feature_names=names)
    assert column_indices(("age", "d", "color"), spec, "wide") == [0, 1, 2, 3, 4, 5]
    assert column_indices(("age:missing", "color=red"), spec, "deep") == [1, 4]


def test_input_checks_name_unknown_columns_and_missing_base_files(tiny):
    spec = tiny[0]
    with pytest.raises(ValueError, match="wide column 'price' is not a feature"):
        REGISTRY["wide_deep"].check_input({"wide": ["price"]}, spec)
    with pytest.raises(ValueError, match=r"deep column index 99 is outside \[0, 16\)"):
        REGISTRY["wide_deep"].check_input({"deep": [99]}, spec)
    with pytest.raises(ValueError, match="base model file '/nope.keras' does not exist"):
        REGISTRY["transfer"].check_input({"base": "/nope.keras"}, spec)
    with pytest.raises(ValueError, match=r"base 'm.weights.h5' is an HDF5 file: base takes a"):
        REGISTRY["transfer"].check({"base": "m.weights.h5"}, CLASSES)


def test_wide_deep_auxiliary_output_trains_with_loss_weights(tiny):
    import keras

    from models.training import predict

    spec, X, _, y = tiny
    keras.utils.set_random_seed(0)
    hp = {"wide": [0, 1], "deep": [2, 3, 4], "aux_output": True, "loss_weights": [0.8, 0.2]}
    model = REGISTRY["wide_deep"].build(spec, REGRESSION, **hp)
    assert model.output_names == ["output", "aux_output"]
    options = TrainingOptions(epochs=1, batch_size=16)
    assert REGISTRY["wide_deep"].loss_weights(hp) == [0.8, 0.2]
    history = REGISTRY["wide_deep"].fit(model, REGRESSION, (X, y), (X, y), options, hp)
    assert {"output_loss", "aux_output_loss"} <= set(history)
    assert predict(model, X, REGRESSION).shape == (48,)


def test_transfer_trains_in_two_phases_with_the_base_frozen_first(tiny, tmp_path):
    import keras

    spec, X, y, _ = tiny
    entry = REGISTRY["transfer"]
    keras.utils.set_random_seed(0)
    hp = {**entry.example_hparams(tmp_path, spec, CLASSES), "frozen_epochs": 2}
    model = entry.build(spec, CLASSES, **hp)
    base = model.get_layer("base")
    frozen = [w.numpy().copy() for w in base.weights]
    epochs = []
    history = entry.fit(
        model,
        CLASSES,
        (X, y),
        (X, y),
        TrainingOptions(epochs=3, batch_size=16),
        hp,
        on_epoch=lambda epoch, logs: epochs.append(logs["phase"]),
    )
    assert epochs == [1.0, 1.0, 2.0] and history["phase"] == [1.0, 1.0, 2.0]
    # phase one left the base untouched; phase two fine-tuned its top layer
    assert base.trainable and any(layer.trainable for layer in base.layers)
    changed = [not np.allclose(a, b.numpy()) for a, b in zip(frozen, base.weights, strict=True)]
    assert any(changed)


def test_transfer_with_nothing_to_unfreeze_trains_the_head_for_every_epoch(tiny, tmp_path):
    spec, X, y, _ = tiny
    entry = REGISTRY["transfer"]
    hp = {**entry.example_hparams(tmp_path, spec, CLASSES), "frozen_epochs": 2, "unfreeze": 0}
    model = entry.build(spec, CLASSES, **hp)
    base = [w.numpy().copy() for w in model.get_layer("base").weights]
    options = TrainingOptions(epochs=4, batch_size=16)
    history = entry.fit(model, CLASSES, (X, y), (X, y), options, hp)
    assert history["phase"] == [1.0, 1.0, 1.0, 1.0]  # it stopped after frozen_epochs
    after = model.get_layer("base").weights
    assert all(np.allclose(a, b.numpy()) for a, b in zip(base, after, strict=True))


@pytest.mark.parametrize("aux_output", [False, True])
def test_a_wide_and_deep_base_gives_its_features_not_its_old_head(aux_output):
    """The transfer head reads what fed the old head: wide and deep features concatenated
    (the named identities after the head, and the core model it nests, are looked through),
    not the old task's class probabilities; also past a softmax layer of its own."""
    import keras

    from models.transfer import feature_extractor

    spec = InputSpec(16, mean=np.zeros(16), variance=np.ones(16))
    hp = {"wide": [0, 1, 2], "deep": [3, 4, 5, 6], "width": 8, "aux_output": aux_output}
    wide_deep = REGISTRY["wide_deep"].build(spec, CLASSES, **hp)
    extractor = feature_extractor(wide_deep)
    assert extractor.output_shape == (None, 3 + 8)  # the wide columns and the deep trunk
    rows = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    assert extractor.predict_on_batch(rows).shape == (5, 11)
    own = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(30), keras.layers.Dense(3), keras.layers.Softmax()]
    )
    assert feature_extractor(own).output_shape == (None, 30)


def test_transfer_fine_tuning_continues_the_epoch_count(tiny, tmp_path):
    """Phase two goes on from phase one's last epoch in TensorBoard (its steps do not start
    at 0 again), and the epochs reported to the runner still count 1, 2, 3, 4."""
    import tensorflow as tf

    spec, X, y, _ = tiny
    entry = REGISTRY["transfer"]
    hp = {**entry.example_hparams(tmp_path, spec, CLASSES), "frozen_epochs": 2}
    reported = []
    entry.train(
        spec,
        CLASSES,
        hp,
        (X, y),
        (X, y),
        TrainingOptions(epochs=4, batch_size=16, tensorboard=True),
        workdir=tmp_path,
        on_epoch=lambda epoch, logs: reported.append((epoch, logs["phase"])),
    )
    assert reported == [(1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0)]
    files = sorted((tmp_path / "tensorboard" / "train").glob("events.out.tfevents*"))
    steps = [
        event.step
        for path in files
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
        if value.tag == "epoch_loss"
    ]
    assert sorted(steps) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "schedule",
    [
        {"name": "piecewise", "boundaries": [1], "values": [0.0005]},
        {"name": "plateau", "patience": 1, "factor": 0.5},
    ],
)
def test_each_epoch_reports_its_learning_rate_under_one_name(schedule, tiny):
    """Keras' schedule callbacks log the rate as learning_rate; the record holds lr only."""
    spec, X, y, _ = tiny
    entry = REGISTRY["mlp"]
    reported = []
    options = TrainingOptions(epochs=3, batch_size=16, learning_rate=0.001, schedule=schedule)
    entry.train(
        spec,
        CLASSES,
        {},
        (X, y),
        (X, y),
        options,
        on_epoch=lambda epoch, logs: reported.append(dict(logs)),
    )
    assert len(reported) == 3
    assert all("lr" in logs and "learning_rate" not in logs for logs in reported), reported
    if schedule["name"] == "piecewise":
        assert [logs["lr"] for logs in reported] == pytest.approx([0.001, 0.0005, 0.0005])


@pytest.mark.parametrize(
    "schedule, rates",
    [
        # boundaries count the whole training's epochs: epoch 3 is phase two's second
        ({"name": "piecewise", "boundaries": [3], "values": [0.0005]}, [1, 1, 1, 0.5]),
        # a step-based schedule spans both phases: 0.1 ** (epoch / 4) at each epoch's start
        ({"name": "exponential"}, [0.1 ** (e / 4) for e in range(4)]),
    ],
)
def test_transfer_schedule_runs_over_both_phases(schedule, rates, tiny, tmp_path):
    spec, X, y, _ = tiny
    entry = REGISTRY["transfer"]
    hp = {**entry.example_hparams(tmp_path, spec, CLASSES), "frozen_epochs": 2}
    hp["fine_tune_lr_factor"] = 1.0  # the schedule alone sets the rates
    options = TrainingOptions(epochs=4, batch_size=16, learning_rate=0.001, schedule=schedule)
    trained = entry.train(spec, CLASSES, hp, (X, y), (X, y), options)
    np.testing.assert_allclose(trained.history["lr"], np.array(rates) * 0.001, rtol=1e-5)
    folder = models.save_member("transfer", trained.model, tmp_path / "saved")
    pred = entry.predict(trained.model, X, CLASSES)
    np.testing.assert_allclose(models.load_member(folder).predict(X, CLASSES), pred, atol=1e-6)


@pytest.mark.parametrize(
    "schedule",
    [
        {"name": "piecewise", "boundaries": [1, 3], "values": [0.0005, 0.0002]},
        {"name": "onecycle", "max_lr": 0.01},
        "warmup_cosine",
    ],
)
def test_transfer_fine_tuning_lowers_every_rate_of_the_schedule_by_its_factor(
    schedule, tiny, tmp_path
):
    """Whatever the schedule, phase two's rates are those of the same run with factor 1,
    times fine_tune_lr_factor (a schedule's own rates, such as max_lr, included)."""
    spec, X, y, _ = tiny
    entry = REGISTRY["transfer"]
    hp = {**entry.example_hparams(tmp_path, spec, CLASSES), "frozen_epochs": 2}
    options = TrainingOptions(epochs=4, batch_size=16, learning_rate=0.001, schedule=schedule)
    rates = {
        factor: entry.train(
            spec, CLASSES, {**hp, "fine_tune_lr_factor": factor}, (X, y), (X, y), options
        ).history["lr"]
        for factor in (1.0, 0.1)
    }
    np.testing.assert_allclose(rates[0.1][:2], rates[1.0][:2], rtol=1e-5)
    np.testing.assert_allclose(rates[0.1][2:], np.array(rates[1.0][2:]) * 0.1, rtol=1e-5)


def test_scaling_a_schedule_scales_the_rates_it_names():
    from models.schedules import check_schedule, scale_schedule

    plateau = check_schedule({"name": "plateau", "min_lr": 1e-4}, 1e-3)
    assert scale_schedule(plateau, 0.1)["min_lr"] == pytest.approx(1e-5)
    assert scale_schedule(plateau, 0.1)["factor"] == plateau["factor"]
    onecycle = check_schedule("onecycle", 1e-3)  # max_lr derived: 10x the (lowered) rate
    assert scale_schedule(onecycle, 0.1) == onecycle
    assert scale_schedule("constant", 0.1) == "constant"


APPLICATION = {"base": "applications:MobileNetV2", "application_kwargs": {"alpha": 0.35}}


def test_applications_base_needs_images_and_an_existing_weights_file(tiny):
    spec = tiny[0]
    with pytest.raises(ValueError, match="needs image data, got flat features"):
        REGISTRY["transfer"].check_input(APPLICATION, InputSpec(16))
    with pytest.raises(ValueError, match="weights file '/nope.weights.h5' does not exist"):
        REGISTRY["transfer"].check_input({**APPLICATION, "weights": "/nope.weights.h5"}, spec)
    REGISTRY["transfer"].check_input(APPLICATION, spec)


def test_applications_base_loads_a_local_weights_file_and_trains_in_two_phases(tiny, tmp_path):
    """A keras.applications architecture as the base, its weights from a local file (what an
    offline user has instead of the download): the frozen base keeps exactly those weights."""
    import keras

    from models import applications

    spec, X, y, _ = tiny
    keras.utils.set_random_seed(0)
    hp = REGISTRY["transfer"].check({**APPLICATION, "image_size": 32}, CLASSES)
    donor = applications.base_model(hp["application"])  # stands in for downloaded weights
    weights_file = tmp_path / "mobilenet_v2_notop.weights.h5"
    donor.save_weights(weights_file)
    hparams = {**APPLICATION, "weights": str(weights_file), "frozen_epochs": 1, "unfreeze": 3}
    model = REGISTRY["transfer"].build(spec, CLASSES, **hparams)
    base = model.get_layer("base")
    assert base.name == "base" and base.input_shape == (None, 32, 32, 3)
    for loaded, saved in zip(base.weights, donor.weights, strict=True):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())
    history = REGISTRY["transfer"].fit(
        model, CLASSES, (X, y), (X, y), TrainingOptions(epochs=2, batch_size=16), hparams
    )
    assert history["phase"] == [1.0, 2.0]
    trainable = [layer.name for layer in base.layers if layer.trainable and layer.weights]
    assert 0 < len(trainable) <= 3  # the top layers only, batch norm still frozen
    assert predict_shape(model, X) == (48, 3)


def test_an_applications_base_of_random_weights_trains_whole_and_a_short_run_is_said(tiny):
    """weights: null (the README's random weights) froze an untrained base whose batch norm,
    in inference mode, passed features of 1e-12 on: the member stayed at chance. And
    training.epochs not above frozen_epochs skipped the fine-tuning without a word."""
    import keras

    spec, X, y, _ = tiny
    keras.utils.set_random_seed(0)
    hparams = {**APPLICATION, "image_size": 32, "frozen_epochs": 1, "unfreeze": 3}
    model = REGISTRY["transfer"].build(spec, CLASSES, **hparams)
    base = model.get_layer("base")
    assert base.trainable  # the whole network learns, batch norm statistics included
    history = REGISTRY["transfer"].fit(
        model, CLASSES, (X, y), (X, y), TrainingOptions(epochs=2, batch_size=16), hparams
    )
    assert history["phase"] == [1.0, 1.0]
    # as it trains (batch statistics), rows get their own outputs: frozen in inference mode,
    # dead features gave every row the head's bias (the moving statistics need thousands of
    # steps to be of use when predicting)
    assert np.asarray(model(X, training=True)).std(axis=0).max() > 1e-3
    pretrained = {**hparams, "weights": "imagenet"}  # what fit reads of it: not from scratch
    with pytest.warns(UserWarning, match=r"training.epochs=1 is not above frozen_epochs=1"):
        REGISTRY["transfer"].fit(
            model, CLASSES, (X, y), (X, y), TrainingOptions(epochs=1, batch_size=16), pretrained
        )


def predict_shape(model, X) -> tuple[int, ...]:
    from models.training import predict

    return predict(model, X, CLASSES).shape


def test_mc_dropout_predictions_average_stochastic_passes(tiny):
    import keras

    spec, X, y, _ = tiny
    keras.utils.set_random_seed(0)
    model = REGISTRY["mc_dropout"].build(spec, CLASSES, samples=5, dropout=0.5)
    single = [model(X[:4], training=True).numpy() for _ in range(2)]
    assert not np.allclose(*single)  # dropout stays on in the stochastic passes
    averaged = model.predict(X[:4], verbose=0)
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, rtol=1e-5)
    # a row's prediction is its own: alone, among others, at any position, in any batch size
    rows = model.predict(X[:12], verbose=0)
    alone = np.concatenate([model.predict(X[i : i + 1], verbose=0) for i in range(12)])
    np.testing.assert_allclose(alone, rows, rtol=1e-5, atol=1e-6)
    shuffled = model.predict(X[:12][::-1], verbose=0, batch_size=5)[::-1]
    np.testing.assert_allclose(shuffled, rows, rtol=1e-5, atol=1e-6)
    assert not np.allclose(rows, model(X[:12], training=False).numpy(), atol=1e-4)  # still MC
    # training draws a mask per row, as dropout does
    model.base(X[:4], training=True)
    assert all(
        layer.noise_shape is None
        for layer in model.base._flatten_layers()
        if isinstance(layer, keras.layers.Dropout)
    )


def test_convnet_augmentation_transforms_training_batches_only(tiny, tmp_path):
    """Augmented training batches differ from pass to pass; predictions do not, and a saved
    and reloaded member predicts the same raw images alike."""
    import keras

    spec, X, y, _ = tiny
    entry = REGISTRY["convnet"]
    assert entry.check({"augment": True}, CLASSES)["augment"] == {
        "flip": "none",
        "translate": 0.1,
        "rotate": 0.0,
        "zoom": 0.1,
    }
    assert entry.check({}, CLASSES)["augment"] is None
    # a mapping turns on what it names, nothing else
    assert entry.check({"augment": {"flip": "horizontal"}}, CLASSES)["augment"] == {
        "flip": "horizontal",
        "translate": 0.0,
        "rotate": 0.0,
        "zoom": 0.0,
    }
    settings = {"flip": "horizontal", "translate": 0.25, "rotate": 0.1, "zoom": 0.2}
    keras.utils.set_random_seed(0)
    model = entry.build(spec, CLASSES, filters=[8], augment=settings)
    names = {layer.name for layer in model.layers}
    assert {"augment_flip", "augment_translate", "augment_rotate", "augment_zoom"} <= names
    passes = [model(X[:8], training=True).numpy() for _ in range(2)]
    assert not np.allclose(*passes)
    history = entry.fit(
        model, CLASSES, (X, y), (X, y), TrainingOptions(epochs=2, batch_size=16), {}, seed=0
    )
    assert len(history["loss"]) == 2
    pred = entry.predict(model, X, CLASSES)
    np.testing.assert_array_equal(pred, entry.predict(model, X, CLASSES))
    folder = models.save_member("convnet", model, tmp_path / "augmented")
    np.testing.assert_allclose(models.load_member(folder).predict(X, CLASSES), pred, atol=1e-6)


@pytest.mark.parametrize("flip", ["horizontal", "horizontal_and_vertical"])
def test_convnet_tta_averages_each_image_over_its_flips(flip, tiny, tmp_path):
    """With ``tta`` a prediction is the mean over the image and its mirror images: a mirrored
    image gets the same prediction; alone or in a batch, and after saving and loading."""
    spec, X, y, _ = tiny
    entry = REGISTRY["convnet"]
    hp = {"filters": [8], "augment": {"flip": flip}, "tta": True}
    trained = entry.train(
        spec, CLASSES, hp, (X, y), (X, y), TrainingOptions(epochs=2, batch_size=16), seed=0
    )
    pred = trained.member.predict(X, CLASSES)
    assert pred.shape == (len(X), CLASSES.n_classes)
    np.testing.assert_allclose(pred.sum(axis=1), 1.0, rtol=1e-5)
    images = X.reshape(-1, *spec.image_shape)
    mirrors = [images[:, :, ::-1]] + (
        [images[:, ::-1], images[:, ::-1, ::-1]] if "_" in flip else []
    )
    for mirrored in mirrors:
        same = trained.member.predict(mirrored.reshape(len(X), -1), CLASSES)
        np.testing.assert_allclose(same, pred, rtol=1e-5, atol=1e-6)
    alone = trained.member.predict(X[:1], CLASSES)
    np.testing.assert_allclose(alone, pred[:1], rtol=1e-5, atol=1e-6)
    folder = models.save_member("convnet", trained.member, tmp_path / "tta")
    np.testing.assert_allclose(models.load_member(folder).predict(X, CLASSES), pred, atol=1e-6)
    # a transfer member on it learns from each image's features averaged over its copies
    trained.member.model.save(tmp_path / "tta_base.keras")
    base = {"base": str(tmp_path / "tta_base.keras"), "frozen_epochs": 1, "unfreeze": 1}
    moved = REGISTRY["transfer"].train(
        spec, CLASSES, base, (X, y), (X, y), TrainingOptions(epochs=2, batch_size=16), seed=0
    )
    assert moved.member.predict(X, CLASSES).shape == (len(X), CLASSES.n_classes)
    # a call that does not say whether it trains makes no copies (last: it may update state)
    assert trained.member.model(X[:5]).shape[0] == 5
    # without tta the network itself tells an image from its mirror
    plain = entry.train(
        spec, CLASSES, {**hp, "tta": False}, (X, y), (X, y), TrainingOptions(epochs=2), seed=0
    )
    flipped = plain.member.predict(images[:, :, ::-1].reshape(len(X), -1), CLASSES)
    assert not np.allclose(flipped, plain.member.predict(X, CLASSES), atol=1e-4)


@pytest.mark.parametrize("separable", [False, True])
def test_convnet_max_norm_bounds_each_filter_of_every_conv_kernel(separable, tiny):
    """Per filter: a Conv2D kernel is (kh, kw, in, out), so each output filter's norm; a
    separable conv's depthwise kernel, each channel's spatial filter, and its pointwise one,
    each output filter (Keras' default axis 0 bounds single rows, or single elements)."""
    import keras

    spec, _, _, _ = tiny
    hp = {"filters": [2, 3], "separable": separable, "max_norm": 0.5, "l2": 1e-3}
    hp["residual"] = True  # the 1x1 convolutions projecting the shortcuts are bounded too
    model = REGISTRY["convnet"].build(spec, CLASSES, initializer="he_uniform", **hp)
    kernels = {"depthwise": (0, 1), "pointwise": (0, 1, 2)} if separable else {"kernel": (0, 1, 2)}
    plain = {"kernel": (0, 1, 2)}
    for name, parts in (("conv_0", kernels), ("conv_1", kernels), ("project_1", plain)):
        conv = model.get_layer(name)
        for part, axes in parts.items():
            weights = getattr(conv, "kernel" if part == "kernel" else f"{part}_kernel")
            grown = keras.ops.convert_to_tensor(np.asarray(weights) * 100.0)
            bounded = keras.ops.convert_to_numpy(getattr(conv, f"{part}_constraint")(grown))
            norms = np.sqrt((bounded**2).sum(axis=axes))
            np.testing.assert_allclose(norms, 0.5, rtol=1e-4, err_msg=f"{name} {part}")
            assert getattr(conv, f"{part}_regularizer").get_config()["l2"] == pytest.approx(1e-3)
            assert type(getattr(conv, f"{part}_initializer")).__name__ == "HeUniform"


def test_convnet_prelu_learns_one_slope_per_channel_in_conv_blocks(tiny):
    spec, _, _, _ = tiny
    hp = {"filters": [2, 3], "activation": "prelu", "dense_units": 5}
    model = REGISTRY["convnet"].build(spec, CLASSES, **hp)
    slopes = {layer.name: layer.count_params() for layer in model.layers if "act" in layer.name}
    assert slopes == {"act_0": 2, "act_1": 3, "dense_act": 5}


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


@pytest.mark.parametrize(
    "field, value, received",
    [
        ("epochs", 0, "epochs must be an integer >= 1, got 0"),
        ("optimizer", "adamm", "optimizer must be one of"),
        ("learning_rate", 0, "learning_rate must be a number in (0, 10), got 0"),
        ("learning_rate", -0.1, "learning_rate must be a number in (0, 10), got -0.1"),
    ],
)
def test_training_options_reject_bad_values(field, value, received):
    with pytest.raises(ValueError, match=re.escape(received)):
        TrainingOptions(**{field: value})


@pytest.mark.parametrize("kind", ["mlp", "logistic", "lightgbm"])
def test_training_targets_that_are_not_class_ids_are_named(tiny, kind):
    spec, X, y, _ = tiny
    entry = REGISTRY[kind]
    names = np.array(["a", "b", "c"])[y]
    cases = [
        (names, r"training targets must be class ids 0..2 .* got <U1 values such as 'a'"),
        (np.where(y == 2, 7, y), r"class ids in \[0, 3\), got 16 outside it \(first 7\)"),
        (np.where(y == 2, 0, y), r"class id\(s\) \[2\] have no training rows of the 3 classes"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            entry.train(spec, CLASSES, {}, (X, bad), (X, y), TrainingOptions(epochs=1))


def test_a_neural_member_refuses_missing_values_it_would_learn_nothing_from(tiny):
    """One NaN cell made the MLP's weights NaN and its predictions uniform, silently."""
    spec, X, y, _ = tiny
    holed = X.copy()
    holed[5, 3] = np.nan
    entry = REGISTRY["mlp"]
    with pytest.raises(ValueError, match=r"training rows hold 1 missing \(NaN\) .* row 5, col"):
        entry.train(spec, CLASSES, {}, (holed, y), (X, y), TrainingOptions(epochs=1))
    trained = entry.train(spec, CLASSES, {}, (X, y), (X, y), TrainingOptions(epochs=1))
    with pytest.raises(ValueError, match=r"predicted rows hold 1 missing \(NaN\)"):
        trained.member.predict(holed, CLASSES)
    # trees read missing values as they are
    REGISTRY["hgb"].train(spec, CLASSES, {}, (holed, y), (X, y), TrainingOptions())


def test_a_transfer_base_that_reads_images_gets_the_rows_folded_back(tiny, tmp_path):
    """Hands-On ML's model A: Input((28, 28)) into Flatten; here (4, 4) for 16 features. It
    was refused ('base takes 4 features, the data has 16')."""
    import keras

    spec, X, y, _ = tiny
    base = keras.Sequential(
        [
            keras.Input((4, 4)),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    base.save(tmp_path / "model_a.keras")
    entry = REGISTRY["transfer"]
    hp = {"base": str(tmp_path / "model_a.keras"), "frozen_epochs": 1}
    trained = entry.train(spec, CLASSES, hp, (X, y), (X, y), TrainingOptions(epochs=2))
    assert trained.member.predict(X, CLASSES).shape == (48, 3)
    keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)]).save(tmp_path / "b.keras")
    with pytest.raises(ValueError, match=r"base takes inputs of shape \(5,\) \(5 values a row\)"):
        entry.build(spec, CLASSES, base=str(tmp_path / "b.keras"))


@pytest.mark.parametrize("smallest", [2, 4])
def test_a_calibrated_member_trains_on_a_class_of_fewer_rows_than_its_folds(smallest, tiny):
    spec, X, y, _ = tiny
    keep = np.r_[np.flatnonzero(y != 2), np.flatnonzero(y == 2)[:smallest]]
    with warnings.catch_warnings():  # scikit-learn's "least populated class" among them
        warnings.simplefilter("error", UserWarning)
        trained = REGISTRY["svm"].train(spec, CLASSES, {}, (X[keep], y[keep]), (X, y), None)
    proba = REGISTRY["svm"].predict(trained.model, X, CLASSES)
    assert proba.shape == (48, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_a_calibrated_member_names_a_class_of_one_training_row(tiny):
    spec, X, y, _ = tiny
    keep = np.r_[np.flatnonzero(y != 2), np.flatnonzero(y == 2)[:1]]
    with pytest.raises(ValueError, match=r"model 'svm' calibrates .* class 2 has 1$"):
        REGISTRY["svm"].train(spec, CLASSES, {}, (X[keep], y[keep]), (X, y), None)


def test_hgb_with_early_stopping_trains_on_a_class_of_one_training_row(tiny, caplog):
    """Its stratified hold-out cannot split a class of one row (a rare class in a fold)."""
    spec, X, y, _ = tiny
    keep = np.r_[np.flatnonzero(y != 2), np.flatnonzero(y == 2)[:1]]
    hp = {"early_stopping": True, "max_iter": 30}
    with caplog.at_level("WARNING"):
        trained = REGISTRY["hgb"].train(spec, CLASSES, hp, (X[keep], y[keep]), (X, y), None)
    assert "class 2 has 1 training row" in caplog.text
    assert REGISTRY["hgb"].predict(trained.model, X, CLASSES).shape == (48, 3)
    # 10% of 30 rows held out: 3 rows for 10 classes
    X30, y30 = np.repeat(X[:10], 3, axis=0), np.repeat(np.arange(10), 3)
    ten = Task("classification", n_classes=10)
    with caplog.at_level("WARNING"):
        REGISTRY["hgb"].train(spec, ten, hp, (X30, y30), (X30, y30), None)
    assert "30 training rows hold out 3, fewer than the 10 classes" in caplog.text


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "catboost"])
@pytest.mark.parametrize("stop_rounds", [None, 50])
def test_a_booster_stops_adding_trees_once_the_training_deadline_passed(
    tiny, tmp_path, kind, stop_rounds
):
    """A 5000-round booster started just before runner.time_limit ran minutes past it: it
    now stops at its next round, keeps the trees it has, and says how many it trained."""
    import time

    from models.deadline import training_deadline

    spec, X, y, _ = tiny
    entry = REGISTRY[kind]
    many = {"iterations" if kind == "catboost" else "n_estimators": 5000}
    hparams = {**many, **({"early_stopping_rounds": stop_rounds} if stop_rounds else {})}
    options = TrainingOptions()
    with training_deadline(time.time() - 1) as deadline:  # passed as the fit starts
        trained = entry.train(spec, CLASSES, hparams, (X, y), (X, y), options)
    assert deadline.rounds == 1
    fitted = trained.member.model
    rounds = {
        "lightgbm": lambda: fitted.booster_.current_iteration(),
        "xgboost": lambda: fitted.get_booster().num_boosted_rounds(),
        "catboost": lambda: fitted.tree_count_,
    }
    assert rounds[kind]() == 1
    models.save_member(kind, trained.member, tmp_path / "m")
    back = models.load_member(tmp_path / "m")
    np.testing.assert_allclose(back.predict(X, CLASSES), trained.member.predict(X, CLASSES))
    assert back.predict(X, CLASSES).shape == (48, 3)
    # without a deadline the fit trains out and keeps no callback of the sweep's
    with training_deadline(None) as none:
        few = {k: 20 for k in many}
        whole = entry.train(spec, CLASSES, few, (X, y), (X, y), options)
    assert none is None and whole.member.predict(X, CLASSES).shape == (48, 3)
    if kind == "xgboost":
        assert trained.member.model.get_params()["callbacks"] is None


@pytest.mark.parametrize(
    "kind, key, unit", [("random_forest", "n_estimators", "trees"), ("hgb", "max_iter", "rounds")]
)
def test_a_forest_or_hgb_grows_in_parts_under_a_deadline_and_stops_after_it_passed(
    tiny, kind, key, unit
):
    """One fit of 300 extra trees or 5000 HistGradientBoosting rounds started just before
    runner.time_limit ran on past it; now they grow in parts and keep what they grew."""
    import time

    from models.deadline import training_deadline

    spec, X, y, _ = tiny
    entry = REGISTRY[kind]
    hparams = {key: 40, **({"early_stopping": False} if kind == "hgb" else {})}
    options = TrainingOptions()
    with training_deadline(time.time() - 1) as deadline:  # passed as the fit starts
        cut = entry.train(spec, CLASSES, hparams, (X, y), (X, y), options, seed=3)
    assert (deadline.rounds, deadline.unit) == (2, unit)  # the first of 20 parts of 40
    grown = cut.member.model.steps[-1][1]
    assert (len(grown.estimators_) if unit == "trees" else grown.n_iter_) == 2
    assert not grown.warm_start
    # a deadline that does not pass: the same model as one fit without a deadline
    with training_deadline(time.time() + 3600) as late:
        staged = entry.train(spec, CLASSES, hparams, (X, y), (X, y), options, seed=3)
    whole = entry.train(spec, CLASSES, hparams, (X, y), (X, y), options, seed=3)
    assert late.rounds is None
    np.testing.assert_allclose(
        staged.member.predict(X, CLASSES), whole.member.predict(X, CLASSES), atol=1e-12
    )


class AfterRounds:
    """A deadline that passes once a fit trained ``n`` rounds (a clock the test controls)."""

    @staticmethod
    def make(n: int):
        from models.deadline import Deadline

        class Rounds(Deadline):
            def passed(self, rounds: int) -> bool:
                return rounds >= n

        return Rounds(0.0)


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "catboost"])
def test_a_booster_cut_by_the_deadline_keeps_its_best_round_with_early_stopping(kind):
    """LightGBM kept its last round (40) when the deadline stopped it, not the best one
    early stopping had seen (3): all 40 trees predicted, and a refit grew as many."""
    from models.deadline import training_deadline

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 5)), rng.integers(0, 2, 200)  # noise: it overfits at once
    Xv, yv = rng.normal(size=(100, 5)), rng.integers(0, 2, 100)
    spec, task = InputSpec(5), Task("classification", n_classes=2)
    trees = "iterations" if kind == "catboost" else "n_estimators"
    hparams = {trees: 5000, "early_stopping_rounds": 200, "learning_rate": 0.3}
    with training_deadline(AfterRounds.make(40)) as deadline:
        cut = REGISTRY[kind].train(spec, task, hparams, (X, y), (Xv, yv), TrainingOptions())
    assert deadline.rounds == 40
    best = cut.info["best_iteration"]
    assert best is not None and best < 30, best
    if kind == "catboost":  # it shrinks itself to its best round (counted from 0)
        assert cut.member.model.tree_count_ == best + 1
        return
    # the same trees as a fit of the best round alone (LightGBM counts it from 1)
    alone = {trees: best if kind == "lightgbm" else best + 1, "learning_rate": 0.3}
    whole = REGISTRY[kind].train(spec, task, alone, (X, y), (Xv, yv), TrainingOptions())
    np.testing.assert_allclose(
        cut.member.predict(Xv, task), whole.member.predict(Xv, task), rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize(
    "kind, trees",
    [
        ("lightgbm", "n_estimators"),
        ("xgboost", "n_estimators"),
        ("catboost", "iterations"),
        ("catboost", "n_estimators"),  # CatBoost's alias: its total was taken as 1000
    ],
)
def test_a_booster_whose_deadline_passes_in_its_last_round_is_not_cut_short(tiny, kind, trees):
    from models.deadline import training_deadline

    spec, X, y, _ = tiny
    with training_deadline(AfterRounds.make(10)) as deadline:
        REGISTRY[kind].train(spec, CLASSES, {trees: 10}, (X, y), (X, y), TrainingOptions())
    assert deadline.rounds is None
    with training_deadline(AfterRounds.make(9)) as early:  # one round before the last
        REGISTRY[kind].train(spec, CLASSES, {trees: 10}, (X, y), (X, y), TrainingOptions())
    assert early.rounds == 9


def test_a_staged_hgb_stops_where_one_fit_stops_also_at_the_end_of_a_part():
    """Early stopping that held exactly at a part's last iteration let the staged fit go on
    to another part: one iteration more than one fit, other probabilities."""
    from models.deadline import training_deadline

    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] + rng.normal(0, 1.0, 400) > 0).astype(int)
    spec, task = InputSpec(6), Task("classification", n_classes=2)
    entry = REGISTRY["hgb"]
    stop = {"early_stopping": True, "n_iter_no_change": 5, "learning_rate": 0.5}
    once = entry.train(spec, task, {**stop, "max_iter": 1000}, (X, y), (X, y), TrainingOptions())
    k = once.member.model.steps[-1][1].n_iter_
    assert 6 <= k < 50, k
    hparams = {**stop, "max_iter": 20 * k}  # parts of k iterations: it stops at a part's end
    whole = entry.train(spec, task, hparams, (X, y), (X, y), TrainingOptions())
    with training_deadline(time.time() + 3600):
        staged = entry.train(spec, task, hparams, (X, y), (X, y), TrainingOptions())
    assert staged.member.model.steps[-1][1].n_iter_ == whole.member.model.steps[-1][1].n_iter_
    np.testing.assert_allclose(staged.member.predict(X, task), whole.member.predict(X, task))


def test_string_labels_in_an_object_array_are_named_in_one_line(tiny):
    """pandas gives text labels as object arrays: their check crashed on str.item()."""
    spec, X, y, _ = tiny
    names = np.array(["a", "b", "c"], dtype=object)[y]
    with pytest.raises(ValueError, match=r"class ids 0..2 .* got object values such as 'a'"):
        REGISTRY["logistic"].train(spec, CLASSES, {}, (X, names), (X, y), TrainingOptions())


def test_a_keras_member_given_a_spec_without_statistics_standardises_as_the_runners(tiny):
    """A spec made by hand (no mean, variance): the member standardises with its training
    rows' statistics, as the runner's spec would have it (it trained on raw inputs)."""
    _, X, y, _ = tiny
    X = X * 1000.0 + 5000.0  # far from standardised
    by_hand = InputSpec(16)
    as_runner = InputSpec(16, mean=X.mean(0), variance=X.var(0))
    entry = REGISTRY["mlp"]
    options = TrainingOptions(epochs=2, batch_size=16)
    preds = [
        entry.train(spec, CLASSES, {}, (X, y), (X, y), options, seed=3).member.predict(X, CLASSES)
        for spec in (by_hand, as_runner)
    ]
    np.testing.assert_allclose(preds[0], preds[1], rtol=1e-4, atol=1e-6)


def test_a_keras_member_takes_default_options_or_their_fields_and_names_anything_else(tiny):
    spec, X, y, _ = tiny
    entry = REGISTRY["mlp"]
    assert entry.train(spec, CLASSES, {}, (X, y), (X, y), None).epochs_run >= 1
    fields = TrainingOptions(epochs=1).as_params()
    assert entry.train(spec, CLASSES, {}, (X, y), (X, y), options=fields).epochs_run == 1
    with pytest.raises(
        TypeError, match=r"TrainingOptions, a mapping of its fields or None .*got 3 \(int\)"
    ):
        entry.train(spec, CLASSES, {}, (X, y), (X, y), 3)


def test_a_member_reads_a_frames_features_by_name_and_names_those_missing(tiny):
    import pandas as pd

    _, X, _, y_reg = tiny
    names = tuple(f"f{i}" for i in range(16))
    spec = InputSpec(16, feature_names=names, mean=X.mean(0), variance=X.var(0))
    member = REGISTRY["ridge"].train(spec, REGRESSION, {}, (X, y_reg), (X, y_reg), None).member
    frame = pd.DataFrame(X, columns=list(names))
    expected = member.predict(X, REGRESSION)
    shuffled = frame[list(reversed(names))].assign(extra=1.0)
    np.testing.assert_allclose(member.predict(shuffled, REGRESSION), expected, atol=1e-5)
    np.testing.assert_allclose(member.predict(X.tolist(), REGRESSION), expected, atol=1e-5)
    listed = REGISTRY["mlp"].train(spec, REGRESSION, {}, (X.tolist(), y_reg), (X, y_reg), None)
    assert listed.member.predict(X.tolist(), REGRESSION).shape == (48,)  # rows as lists
    y = (np.arange(48) % 3).tolist()
    classes = REGISTRY["mlp"].train(spec, CLASSES, {}, (X.tolist(), y), (tuple(X), y), None)
    assert classes.member.predict(tuple(X), CLASSES).shape == (48, 3)  # labels as lists
    with pytest.raises(ValueError, match=r"the rows lack 1 of this member's 16 features \('f3'\)"):
        member.predict(frame.drop(columns="f3"), REGRESSION)
    twice = pd.concat([frame, frame[["f2"]]], axis=1)
    with pytest.raises(ValueError, match=r"the rows name the feature\(s\) 'f2' more than once"):
        member.predict(twice, REGRESSION)


def test_a_lightgbm_member_predicts_no_rows_as_no_rows_of_every_class(tiny, tmp_path):
    from models.store import load_member, save_member

    spec, X, y, _ = tiny
    trained = REGISTRY["lightgbm"].train(
        spec, CLASSES, {"n_estimators": 5}, (X, y), (X, y), TrainingOptions()
    )
    save_member("lightgbm", trained.member, tmp_path / "m")
    loaded = load_member(tmp_path / "m")
    assert loaded.predict(X[:0], CLASSES).shape == (0, 3)


def test_a_member_saved_as_another_kind_or_twice_into_one_bag_folder_is_said_or_replaced(
    tiny, tmp_path
):
    from models.store import ArtifactError, load_member, save_bag, save_member

    spec, X, y, _ = tiny
    member = REGISTRY["logistic"].train(spec, CLASSES, {}, (X, y), (X, y), None).member
    with pytest.raises(ValueError, match=r"this member is of kind 'logistic', not 'mlp'"):
        save_member("mlp", member, tmp_path / "wrong")
    fold = save_member("logistic", member, tmp_path / "fold")
    bag = tmp_path / "bag"
    save_bag("logistic", [fold, fold, fold], bag)
    save_bag("logistic", [fold], bag)  # again, with fewer folds: the bag replaced whole
    assert sorted(p.name for p in bag.iterdir()) == ["fold0", "kind.json"]
    save_bag("logistic", [bag / "fold0", fold], bag)  # a fold of the bag it replaces
    assert load_member(bag).predict(X, CLASSES).shape == (48, 3)
    ridge = REGISTRY["ridge"].train(spec, REGRESSION, {}, (X, y * 1.0), (X, y * 1.0), None)
    other = save_member("ridge", ridge.member, tmp_path / "ridge")
    with pytest.raises(ArtifactError, match=r"fold 1 at .* is not a saved 'logistic' member"):
        save_bag("logistic", [fold, other], bag)
    assert load_member(bag).predict(X, CLASSES).shape == (48, 3)  # the bag there stays whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".bag")) == []


def test_saving_into_a_folder_of_other_files_is_refused_and_a_saved_member_replaced(tiny, tmp_path):
    """save_bag deleted a project folder it was pointed at; save_member listed (and checked
    on load) every file already there, so editing one of them made the member unloadable."""
    from models.store import load_member, save_bag, save_member

    spec, X, y, _ = tiny
    member = REGISTRY["logistic"].train(spec, CLASSES, {}, (X, y), (X, y), None).member
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "analysis.py").write_text("x = 1\n")
    fold = save_member("logistic", member, tmp_path / "fold")
    for save in (
        lambda: save_bag("logistic", [fold], project),
        lambda: save_member("logistic", member, project),
    ):
        with pytest.raises(
            ValueError, match=r"holds files that are not a saved member \(analysis.py, data\)"
        ):
            save()
    assert sorted(p.name for p in project.iterdir()) == ["analysis.py", "data"]
    (project / "kind.json").write_text('{"name": "a project file of that name"}')
    with pytest.raises(ValueError, match=r"holds files that are not a saved member"):
        save_member("logistic", member, project)
    assert sorted(p.name for p in project.iterdir()) == ["analysis.py", "data", "kind.json"]
    with pytest.raises(ValueError, match=r"it is a file, not a folder"):
        save_member("logistic", member, project / "analysis.py")
    (fold / "stale.txt").write_text("left by an earlier save")  # saved again: replaced whole
    save_member("logistic", member, fold)
    assert "stale.txt" not in {p.name for p in fold.iterdir()}
    assert load_member(fold).predict(X, CLASSES).shape == (48, 3)
    save_member("logistic", member, tmp_path / "empty")  # an empty folder is fine
    (tmp_path / "empty2").mkdir()
    assert load_member(save_member("logistic", member, tmp_path / "empty2")) is not None


def test_a_scikit_learn_members_training_score_reads_a_sample_of_a_large_table():
    """k-NN predicting every training row is quadratic in them: 20 minutes on 350,000 rows
    after a 5-minute time limit. The training score reads a seeded sample of them."""
    from models.shallow import TRAIN_SCORE_ROWS, _score_rows

    X = np.arange(2 * (TRAIN_SCORE_ROWS + 1), dtype=np.float32).reshape(-1, 2)
    y = np.arange(len(X))
    Xs, ys = _score_rows(X, y, seed=3)
    assert len(ys) == TRAIN_SCORE_ROWS and len(np.unique(ys)) == TRAIN_SCORE_ROWS
    np.testing.assert_array_equal(Xs[:, 0], 2 * ys)  # the rows and their targets together
    np.testing.assert_array_equal(_score_rows(X, y, seed=3)[1], ys)  # seeded
    np.testing.assert_array_equal(_score_rows(X[:10], y[:10], seed=3)[1], y[:10])  # all


def test_an_image_member_predicts_a_batch_or_one_image_as_well_as_flat_rows(tiny):
    """A convnet member given images shaped (n, 4, 4) or one (4, 4) image failed deep in
    TensorFlow ('as_list() is not defined on an unknown TensorShape'); flat rows worked."""
    from dataclasses import replace

    spec, X, y, _ = tiny
    spec = replace(spec, pixel_range=(float(X.min()), float(X.max())))
    trained = REGISTRY["convnet"].train(
        spec, CLASSES, {"filters": [4]}, (X, y), (X, y), TrainingOptions(epochs=1), seed=0
    )
    member = trained.member
    assert member.image_shape == (4, 4, 1)
    flat = member.predict(X, CLASSES)
    for images in (X.reshape(48, 4, 4), X.reshape(48, 4, 4, 1)):
        np.testing.assert_allclose(member.predict(images, CLASSES), flat, atol=1e-6)
    for one in (X[0].reshape(4, 4), X[0].reshape(4, 4, 1)):
        np.testing.assert_allclose(member.predict(one, CLASSES), flat[:1], atol=1e-6)
    with pytest.raises(ValueError, match=r"reads images of shape \(4, 4, 1\).*got .* \(48, 5, 5\)"):
        member.predict(np.zeros((48, 5, 5), np.float32), CLASSES)


def test_a_hand_made_input_spec_of_another_width_than_the_rows_is_said_before_training(tiny):
    """InputSpec(n_features=5) on 16-column rows trained, then failed to predict with
    TensorFlow's 'Incompatible shapes: [1,16] vs. [1,5]'."""
    _, X, y, _ = tiny
    with pytest.raises(ValueError, match=r"the input spec says 5 features, the rows have 16"):
        REGISTRY["mlp"].train(
            InputSpec(5), CLASSES, {}, (X, y), (X, y), TrainingOptions(epochs=1), seed=0
        )


@pytest.mark.parametrize("terminate", [True, False])
def test_a_member_whose_loss_went_nan_fails_saying_whether_training_stopped(terminate):
    """With training.terminate_on_nan=false the member trained on to its last epoch and
    failed saying 'training stopped'."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    options = TrainingOptions(
        epochs=4, batch_size=8, learning_rate=9.0, optimizer="sgd", terminate_on_nan=terminate
    )
    said = "training stopped" if terminate else "it trained on to epoch 4, as training.terminate"
    with pytest.raises(FloatingPointError, match=rf"loss became nan in epoch 1; {said}"):
        REGISTRY["mlp"].train(
            InputSpec(4), REGRESSION, {}, (X, X[:, 0] * 3e3), (X, X[:, 0]), options, seed=0
        )
