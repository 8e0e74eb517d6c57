"""Config interpretation: real Hydra composition of conf/, then validation into the run spec."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from runner.__main__ import CONF_DIR, known_experiments
from runner.spec import SpecError, check_members_against_data, from_config, settle_folds


def composed(*overrides: str, experiment: str | None = "quickstart") -> dict:
    """The resolved config as ``python -m runner +experiment=... <overrides>`` composes it."""
    exp = [f"+experiment={experiment}"] if experiment else []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*exp, *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def spec_of(*overrides: str, experiment: str | None = "quickstart", tmp: Path = Path("/tmp")):
    return from_config(composed(*overrides, experiment=experiment), experiment, str(tmp))


def test_every_experiment_file_composes_into_a_valid_spec(tmp_path):
    assert "quickstart" in known_experiments()
    for name in known_experiments():
        spec = spec_of(experiment=name, tmp=tmp_path)
        assert spec.experiment == name and spec.members


def test_quickstart_spec_has_the_diverse_zoo(tmp_path):
    spec = spec_of(tmp=tmp_path)
    models = {m.model for m in spec.members}
    assert {"mlp", "selu", "convnet"} <= models
    assert any(m.kind == "sklearn" for m in spec.members)
    assert all(m.resources.cpu == 1 for m in spec.members)
    assert spec.tracking_uri == "sqlite:///mlflow.db" or spec.tracking_uri.startswith("sqlite")
    assert Path(spec.storage_path).is_absolute()
    assert spec.output_dir == str(tmp_path)


def test_member_training_merges_over_the_defaults():
    spec = spec_of("training.epochs=7", "+members.mlp.training.batch_size=8")
    mlp = next(m for m in spec.members if m.name == "mlp")
    assert (mlp.training.epochs, mlp.training.batch_size) == (7, 8)
    assert next(m for m in spec.members if m.name == "selu").training.batch_size == 32


def test_config_hash_changes_with_what_determines_the_member():
    a = {m.name: m.config_hash for m in spec_of().members}
    b = {m.name: m.config_hash for m in spec_of("members.mlp.hparams.width=64").members}
    assert a["mlp"] != b["mlp"] and a["selu"] == b["selu"]


def test_sweep_ids_are_fresh_unless_given():
    assert spec_of().sweep_id != spec_of().sweep_id
    assert spec_of("runner.sweep_id=nightly-1").sweep_id == "nightly-1"


def test_test_fraction_does_not_count_for_a_dataset_with_its_own_test_split(tmp_path):
    # Fashion-MNIST's test rows are its own 10,000: only val_fraction splits its training set
    spec = spec_of("data.val_fraction=0.5", "data.test_fraction=0.6", experiment="fashion_zoo")
    assert (spec.data.val_fraction, spec.data.name) == (0.5, "fashion_mnist")
    with pytest.raises(SpecError, match=r"0.5 \+ 0.6 = 1.1"):
        spec_of("data.val_fraction=0.5", "data.test_fraction=0.6", tmp=tmp_path)


def test_tracking_uri_comes_from_the_environment_when_set(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/elsewhere.db")
    assert spec_of().tracking_uri == "sqlite:////tmp/elsewhere.db"
    assert spec_of("tracking.uri=http://127.0.0.1:5000").tracking_uri == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["members.mlp.model=transformerz"],
            r"members.mlp.model: unknown model 'transformerz'; "
            r"known models: .*mlp.*; a kind of your own is registered by its module: "
            r"runner.model_modules=\[MODULE\]$",
        ),
        (["training.epochs=0"], r"training: epochs must be an integer >= 1, got 0"),
        (["+members.mlp.training.epochs=-2"], r"got -2"),
        (["data.val_fraction=1.5"], r"data.val_fraction: must be a number in \(0, 1\), got 1.5"),
        (["data.test_fraction=0"], r"data.test_fraction: must be a number in \(0, 1\), got 0"),
        (["data.val_fraction=0.5", "data.test_fraction=0.5"], r"must be < 1.*0.5 \+ 0.5 = 1"),
        (
            ["tracking.uri=ftp://x/y"],
            r"tracking.uri: unknown scheme 'ftp' in 'ftp://x/y'; "
            r"allowed: sqlite",
        ),
        (["tracking.uri=/plain/path"], r"unknown scheme '' in '/plain/path'"),
        (["ensemble.method=bagging"], r"unknown ensemble method 'bagging'; known: .*mean"),
        (
            ["+ensemble.params.alpha=1"],
            r"ensemble.params: unknown parameter\(s\) 'alpha' for method 'weighted'; "
            r"its parameters: l2, max_members, maxiter, random_state",
        ),
        (["data.name=imagenet"], r"data.name: unknown dataset 'imagenet'; known: .*digits"),
        (["resources.cpu=-1"], r"resources.cpu: must be a finite number >= 0, got -1"),
        (["resources.gpu=nan"], r"resources.gpu: must be a finite number >= 0, got nan"),
        (["+members.mlp.color=red"], r"members.mlp: unknown key 'color'; allowed: model"),
        (["runner.sweep_id='a b'"], r"runner.sweep_id: 'a b' must match"),
        (
            ["ensemble.candidates=1"],
            r"ensemble.candidates: must be an integer >= 2 or None, got 1",
        ),
        (
            ["training.clipnorm=1.0", "training.clipvalue=0.5"],
            r"training: set clipnorm or clipvalue, not both .* clipnorm=1.0 and clipvalue=0.5",
        ),
        (["runner.verbose=7"], r"runner.verbose: must be 0, 1 or 2, got 7"),
        (  # the shared training group holds values; domains are searched per member
            ["search=random", "training.learning_rate={loguniform: [0.0001, 0.01]}"],
            r"training.learning_rate: a search domain \(loguniform\) is searched per member.*"
            r"set members.NAME.training.learning_rate=\.\.\. with search=random",
        ),
        # yes/no words are strings to Hydra, and truthy: refused, not read as true
        (["ensemble.log_model=no"], r"ensemble.log_model: must be true or false, got 'no'"),
        (["ensemble.champion=no"], r"ensemble.champion: must be true or false, got 'no'"),
        (["+data.log_target=no"], r"data.log_target: must be true or false, got 'no'"),
        (
            ["cluster.include_dashboard=on"],
            r"cluster.include_dashboard: must be true or false, got 'on'",
        ),
        (["runner.sweep_id=''"], r"runner.sweep_id: must be a name or null .*got ''"),
        (  # registering needs the logged model (it was silently not registered)
            ["ensemble.log_model=false", "ensemble.register_as=x"],
            r"^ensemble.register_as: 'x' registers the logged model, and ensemble.log_model=false",
        ),
        # a required key or group deleted with ~ (a TypeError traceback before)
        (["~ensemble"], r"^ensemble.method: missing; it must be set$"),
        (["~data.name"], r"^data.name: missing; it must be set$"),
        (["cluster.num_cpus=0"], r"^cluster.num_cpus: must be an integer >= 1, got 0$"),
        (["experiment_name=''"], r"^experiment_name: '' must match .* \(or be null\)$"),
        (  # another dataset's key, as Hydra's own hint (+data.path=) suggests: ignored before
            ["+data.path=penguins.csv", "+data.target=species"],
            r"^data.path: 'penguins.csv' does not apply to data=digits, which does not read it "
            r"\(data=california_housing or data=csv .*\+experiment=tabular data.path=FILE",
        ),
        (["+data.task=regression"], r"^data.task: 'regression' does not apply to data=digits"),
        (  # a stage's own key is named as the stage's
            ["+stages.pre.data={name: digits, target: y}", "+stages.pre.members={m: {model: mlp}}"],
            r"^stages.pre.data.target: 'y' does not apply to data=digits",
        ),
        (  # uniform samples fractions: a whole-number setting refuses one before Ray starts
            ["search=random", "+members.mlp.training={epochs: {uniform: [1, 3]}}"],
            r"epochs must be an integer >= 1, got 1.764 \(uniform\[1, 3\] samples fractions",
        ),
    ],
)
def test_bad_values_fail_with_one_line_naming_value_and_allowed(overrides, message):
    with pytest.raises(SpecError, match=message) as err:
        spec_of(*overrides)
    assert "\n" not in str(err.value)


def test_duplicate_member_names_in_a_list_are_rejected():
    cfg = composed()
    cfg["members"] = [{"model": "mlp"}, {"model": "selu"}, {"model": "mlp"}]
    with pytest.raises(SpecError, match="duplicate member name 'mlp'"):
        from_config(cfg, "quickstart", "/tmp")


def test_members_as_a_list_with_names_are_accepted():
    cfg = composed()
    cfg["members"] = [{"name": "a", "model": "mlp"}, {"name": "b", "model": "mlp"}]
    assert [m.name for m in from_config(cfg, "quickstart", "/tmp").members] == ["a", "b"]


def test_no_experiment_and_no_members_fail_clearly():
    with pytest.raises(SpecError, match=r"no experiment selected; pass \+experiment=NAME"):
        spec_of(experiment=None)
    cfg = composed()
    cfg["members"] = {}
    with pytest.raises(SpecError, match="no members to train"):
        from_config(cfg, "quickstart", "/tmp")


def test_hparam_values_are_checked_against_the_task_before_anything_runs():
    from runner.data import load
    from runner.spec import DataSpec

    data = load(DataSpec("digits", 0.2, 0.2, 0))
    spec = spec_of("members.mlp.hparams.dropout=2.0")
    with pytest.raises(SpecError, match=r"members.mlp.hparams: dropout must be .*got 2.0"):
        check_members_against_data(spec.members, data.task, data.input_spec)
    spec = spec_of("+members.extra.model=ridge")
    with pytest.raises(SpecError, match=r"model 'ridge' does not support classification"):
        check_members_against_data(spec.members, data.task, data.input_spec)


def test_training_options_are_checked_against_the_task_before_anything_runs():
    from models.base import Task
    from runner.data.types import InputSpec

    digits, housing = Task("classification", 10), Task("regression")
    flat = InputSpec(64)
    cases = [
        (
            ("training.early_stopping=3", "+members.mlp.training.early_stopping_monitor=val_rmse"),
            digits,
            r"members.mlp.training: early_stopping_monitor 'val_rmse' is not logged for "
            "classification",
        ),
        (
            ("schedule=plateau", "training.schedule.monitor=val_accuracy"),
            housing,
            r"schedule.monitor 'val_accuracy' is not logged for regression",
        ),
        (("training.class_weight=balanced",), housing, r"class_weight is for classification"),
        (
            (
                "search=random",
                "+members.mlp.training={early_stopping: {choice: [0, 2]}}",
                "+members.mlp.training.early_stopping_monitor=val_rmse",
            ),
            digits,
            r"members.mlp.training.early_stopping: early_stopping_monitor 'val_rmse'",
        ),
    ]
    for overrides, task, message in cases:
        spec = spec_of(*overrides, "~members.convnet", "~members.resnet")
        with pytest.raises(SpecError, match=message):
            check_members_against_data(spec.members, task, flat)
    # a monitor nothing watches is no error; class ids beyond the task's classes are
    cfg = composed("training.early_stopping=0", "~members.convnet", "~members.resnet")
    cfg["members"]["mlp"]["training"] = {"early_stopping_monitor": "val_rmse"}
    check_members_against_data(from_config(cfg, "quickstart", "/tmp").members, digits, flat)
    cfg["training"]["class_weight"] = {12: 5.0}
    spec = from_config(cfg, "quickstart", "/tmp")
    with pytest.raises(SpecError, match=r"class_weight names class id\(s\) \[12\], but the task"):
        check_members_against_data(spec.members, digits, flat)


def test_a_metric_must_be_known_and_score_the_task(tmp_path):
    from models.base import Task
    from runner.spec import SpecError, check_metric_against_task

    assert spec_of("metric=log_loss", tmp=tmp_path).metric == "log_loss"
    with pytest.raises(SpecError, match=r"^metric: unknown metric 'f1'; known: accuracy, log_loss"):
        spec_of("metric=f1", tmp=tmp_path)
    with pytest.raises(SpecError, match=r"^metric 'mae' does not score classification"):
        check_metric_against_task("mae", Task("classification", 3))
    check_metric_against_task("mae", Task("regression"))


def test_a_storage_path_that_cannot_be_a_folder_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SpecError, match=r"runner.storage_path: cannot make the folder .*a-file"):
        spec_of(f"runner.storage_path={blocker}/results")
    assert not [p for p in tmp_path.rglob("*") if p.name != "a-file" and not p.is_dir()]
    assert not list(tmp_path.rglob(".runner-check-*")) and not list(tmp_path.rglob("results"))
    with pytest.raises(SpecError, match=r"cannot make the folder '/proc/nope' \(/proc"):
        spec_of("runner.storage_path=/proc/nope")


@pytest.mark.parametrize(
    "override, message",
    [
        ("+runner.timelimit=60", "runner.timelimit: unknown key; did you mean runner.time_limit?"),
        ("+runner.fold=5", "did you mean runner.folds?"),
        ("+foo=1", "foo: unknown key (allowed: experiment_name"),
        ("+optimizer.momentum=0.5", "settings are training.optimizer.KEY=VALUE"),
    ],
)
def test_an_unknown_runner_or_root_key_is_refused_not_ignored(override, message):
    """A misspelt key would otherwise run the sweep without what it asked for (no time
    limit, no bagging)."""
    with pytest.raises(SpecError) as err:
        spec_of(override)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_mlflows_own_spellings_of_a_databricks_store_are_accepted():
    from runner.spec import parse_tracking_uri

    for uri in ("databricks", "databricks://my-profile"):
        assert parse_tracking_uri(uri) == uri
    with pytest.raises(SpecError, match="unknown scheme 'databrick' in 'databrick://x'"):
        parse_tracking_uri("databrick://x")


def tabular_spec(*overrides: str, tmp: Path = Path("/tmp")):
    table = ["data.path=table.csv", "data.target=label"]
    return spec_of(*table, *overrides, experiment="tabular", tmp=tmp)


@pytest.mark.parametrize(
    "rows, smallest, folds",
    [(300, 40, 5), (10_000, 40, 5), (10_001, 40, 0), (300, 3, 3), (300, 1, 0), (300, None, 5)],
)
def test_auto_folds_bag_small_tables_within_their_rarest_class(rows, smallest, folds):
    spec = tabular_spec()
    assert spec.folds_auto and spec.folds == 0  # settled once the table is loaded
    settled, note = settle_folds(spec, rows, smallest)
    assert settled.folds == folds and not settled.folds_auto
    assert all(m.folds == folds for m in settled.members)
    assert ("bagged over" in note) == bool(folds) and "runner.folds=auto" in note


def test_auto_folds_leave_searched_members_and_smoke_runs_cheap():
    assert settle_folds(tabular_spec("smoke=true"), 300, 40)[0].folds == 2
    searched = tabular_spec("search=random", "++members.mlp.hparams.width={choice: [32, 64]}")
    settled, note = settle_folds(searched, 300, 40)
    assert settled.folds == 0 and "not bagged (searched members are not bagged)" in note


def test_a_refit_needs_the_folds_auto_settles_on():
    spec = tabular_spec("runner.refit=true")
    assert settle_folds(spec, 300, 40)[0].refit
    with pytest.raises(SpecError, match=r"runner.refit: .*auto does not bag here .*10001 rows"):
        settle_folds(spec, 10_001, 40)
    with pytest.raises(SpecError, match=r"runner.folds: must be .* or auto, got 'sometimes'"):
        tabular_spec("runner.folds=sometimes")


def test_an_experiment_in_a_sub_folder_is_chosen_by_its_path_and_named_with_dots(tmp_path):
    from runner.__main__ import _check_experiment_override

    nested = tmp_path / "experiment" / "team"
    nested.mkdir(parents=True)
    (nested / "nested.yaml").write_text("# @package _global_\ndefaults:\n  - quickstart\n")
    assert "team/nested" in known_experiments([tmp_path])
    chosen_as = ("+experiment=team/nested", "+experiment='team/nested'", '+experiment="quickstart"')
    for chosen in chosen_as:
        _check_experiment_override(["--config-dir", str(tmp_path), chosen])  # not refused
    with pytest.raises(SystemExit) as stop:
        _check_experiment_override(["--config-dir", str(tmp_path), "+experiment=team/nope"])
    assert stop.value.code == 2
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        search = f"hydra.searchpath=[file://{tmp_path}]"
        cfg = compose("config", [search, "+experiment=team/nested"])
    spec = from_config(OmegaConf.to_container(cfg, resolve=True), "team/nested", str(tmp_path))
    assert spec.experiment == "team.nested"


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("experiment", "an experiment file starts with the line '# @package _global_'"),
        ("model", "a model preset goes to a member: +model@members.NAME=PRESET"),
    ],
)
def test_keys_of_a_misplaced_group_say_where_they_belong(key, hint):
    cfg = composed()
    cfg[key] = {"x": 1}
    with pytest.raises(SpecError, match="^" + re.escape(f"{key}: unknown key; {hint} (allowed: ")):
        from_config(cfg, "quickstart", "/tmp")


def test_a_smoke_run_caps_a_searched_epoch_count_too():
    spec = spec_of("smoke=true", "search=random", "+members.mlp.training.epochs={randint: [5, 9]}")
    mlp = next(m for m in spec.members if m.name == "mlp")
    assert mlp.training.epochs == 1 and not any("epochs" in path for path in mlp.search)


def test_a_searched_member_named_as_a_model_kind_leaves_that_kind_to_distill():
    spec = spec_of(
        "search=random", "+members.mlp.hparams.width={choice: [64, 128]}", "ensemble.distill=mlp"
    )
    assert spec.student is not None and spec.student.model == "mlp"
    assert not spec.student.search and spec.student.hparams == {}


def test_a_transfer_base_or_weights_file_given_relative_is_resolved_where_the_command_ran(
    tmp_path, monkeypatch
):
    """The trials run in Ray's workers, in another directory: a relative path that worked
    for the driver's checks failed inside the trial ('no kind.json', 'does not exist')."""
    (tmp_path / "base.keras").write_bytes(b"")
    (tmp_path / "w.weights.h5").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    spec = spec_of(
        "+members.tl={model: transfer, hparams: {base: base.keras}}",
        "+members.app={model: transfer, hparams: {base: 'applications:MobileNetV2', "
        "weights: w.weights.h5}}",
    )
    hparams = {m.name: m.hparams for m in spec.members}
    assert hparams["tl"]["base"] == str(tmp_path / "base.keras")
    assert hparams["app"]["weights"] == str(tmp_path / "w.weights.h5")
    assert hparams["app"]["base"] == "applications:MobileNetV2"  # not a file: as given
    (tmp_path / "other.keras").write_bytes(b"")
    searched = spec_of(
        "search=random",
        "+members.tl={model: transfer, hparams: {base: {choice: [base.keras, other.keras]}}}",
    )
    tl = next(m for m in searched.members if m.name == "tl")
    both = [str(tmp_path / "base.keras"), str(tmp_path / "other.keras")]
    assert tl.search["hparams.base"] == {"choice": both} and tl.candidates["hparams.base"] == both


def test_a_stage_on_another_dataset_inherits_only_the_keys_that_dataset_reads():
    """A stage switching to fashion_mnist inherited the images' image_size, now refused as a
    key fashion_mnist does not read: it is not the stage's."""
    spec = spec_of(
        "data=images",
        "data.path=imgs",
        "data.image_size=[28,28]",
        "+stages.pre.data={name: fashion_mnist}",
        "+stages.pre.members={m: {model: mlp}}",
    )
    assert spec.stages[0].data.name == "fashion_mnist" and spec.stages[0].data.image_size is None


@pytest.mark.parametrize(
    "word, said",
    [
        ("experiment_name=2024", "the int 2024"),
        ("experiment_name=2024_01", "the int 202401"),
        ("experiment_name=nan", "the float nan"),
        ("ensemble.register_as=20261207", "the int 20261207"),
        ("ensemble.register_as=true", "the bool True"),
        ("runner.sweep_id=2024_01", "the int 202401"),  # resumed or made sweep 202401
        ("runner.sweep_id=0", "the int 0"),  # a new random id, never resumable by 0
    ],
)
def test_names_hydra_reads_as_numbers_are_refused_saying_how_to_quote_them(word, said, tmp_path):
    """Hydra reads experiment_name=2024 and ensemble.register_as=2024 as numbers: the first
    was refused as not matching a pattern it matches, the second passed the check and, after
    every member trained, stopped the sweep with a traceback as it registered the model."""
    key = word.split("=")[0]
    with pytest.raises(SpecError, match=rf"^{key}: Hydra read the value as {said}, not a name"):
        spec_of(word, tmp=tmp_path)
    quoted = spec_of(f"{key}='2024_01'", tmp=tmp_path)  # as a shell passes ="'2024_01'"
    assert "2024_01" in (quoted.experiment, quoted.ensemble.register_as, quoted.sweep_id)


def test_mlflow_experiment_name_in_the_environment_names_the_experiment(monkeypatch, tmp_path):
    """MLflow's own variable was ignored: the runs went to the +experiment choice's name."""
    assert spec_of(tmp=tmp_path).experiment == "quickstart"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team-digits")
    assert spec_of(tmp=tmp_path).experiment == "team-digits"
    assert spec_of("experiment_name=mine", tmp=tmp_path).experiment == "mine"  # the override wins
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "")  # exported empty: unset
    assert spec_of(tmp=tmp_path).experiment == "quickstart"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "/Users/me@x.com/exp")  # a Databricks path
    with pytest.raises(SpecError, match=r"MLFLOW_EXPERIMENT_NAME='/Users/me@x.com/exp' is no"):
        spec_of(tmp=tmp_path)


def test_a_member_named_ensemble_is_refused():
    """Its run and leaderboard row read as the ensemble's ("test gain over ensemble")."""
    with pytest.raises(SpecError, match=r"member name 'ensemble' is the runner's own run's"):
        spec_of("+model@members.ensemble=knn")


def test_training_options_on_a_member_that_reads_none_are_refused():
    """members.logistic.training.learning_rate=0.5 ran, used and logged nowhere."""
    with pytest.raises(
        SpecError,
        match=r"members.logistic.training: learning_rate: training "
        r"options apply to Keras members, and 'logistic' \(sklearn\) reads none",
    ):
        spec_of("+members.logistic.training.learning_rate=0.5")


def test_hparams_that_are_not_a_mapping_are_named_once():
    """The member's name came twice: 'members.b: members.b.hparams: must be a mapping'."""
    from runner.spec import SpecError, parse_members

    with pytest.raises(SpecError) as err:
        parse_members({"b": {"model": "logistic", "hparams": [1, 2]}}, {}, {}, 0)
    assert str(err.value) == "members.b.hparams: must be a mapping, got [1, 2]"
