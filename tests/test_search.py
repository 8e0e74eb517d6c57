"""Hyperparameter search: YAML search spaces, Tune's random/Optuna search, ASHA early stopping."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from test_spec import composed, spec_of

from helpers import read_summary, run_cli
from runner.search import SearchSpec, check_domain, is_domain, split_domains, tune_settings
from runner.spec import SpecError, from_config

WIDTH = "+members.mlp.hparams.width={choice: [32, 64, 128]}"
LR = "+members.mlp.training.learning_rate={loguniform: [0.0001, 0.01]}"


def test_domains_are_recognised_and_their_candidates_checked():
    assert is_domain({"choice": [1, 2]}) and not is_domain({"scale": 2.0, "mode": "fan_in"})
    assert check_domain("p", {"randint": [2, 5]}) == [2, 4]
    plain, space, cands = split_domains({"a": {"uniform": [0.0, 0.5]}, "b": 3}, "hparams")
    assert plain == {"a": 0.0, "b": 3} and space == {"hparams.a": {"uniform": [0.0, 0.5]}}
    assert cands == {"hparams.a": [0.0, 0.5, pytest.approx(0.191)]}  # and a fraction between
    low, high, inner = check_domain("p", {"loguniform": [1e-4, 1e-2]})
    assert (low, high) == (1e-4, 1e-2) and low < inner < high and inner != round(inner)
    with pytest.raises(ValueError, match=r"uniform needs \[low, high\] with low < high"):
        check_domain("p", {"uniform": [2, 1]})
    with pytest.raises(ValueError, match="loguniform needs low > 0"):
        check_domain("p", {"loguniform": [0, 1]})
    # Tune's other sampling functions are named, with what to write instead
    with pytest.raises(ValueError, match=r"hparams.w: 'grid_search' is not a search domain .*"):
        split_domains({"w": {"grid_search": [64, 128]}}, "hparams")
    with pytest.raises(ValueError, match="hparams.w: unknown search domain 'choise', did you mean"):
        split_domains({"w": {"choise": [64, 128]}}, "hparams")
    assert split_domains({"aug": {"flip": "horizontal"}}, "hparams")[0]  # a plain mapping


def test_random_search_with_a_seed_samples_the_same_trials(tmp_path):
    from ray import tune
    from ray.tune.experiment import Experiment

    def samples(seed):
        settings = tune_settings(SearchSpec(name="random", num_samples=4, seed=seed), 10)
        alg = settings.get("search_alg")
        if alg is None:  # no seed: Tune's own unseeded generator
            from ray.tune.search import BasicVariantGenerator

            alg = BasicVariantGenerator()
        space = {"member": {"hparams": {"C": tune.loguniform(1e-4, 10.0)}}}
        trials = Experiment(
            "e", lambda c: None, config=space, num_samples=4, storage_path=str(tmp_path)
        )
        alg.add_configurations([trials])
        out = []
        while (trial := alg.next_trial()) is not None:
            out.append(trial.config["member"]["hparams"]["C"])
        return out

    assert samples(3) == samples(3) != samples(4)
    assert samples(None) != samples(None)


@pytest.mark.parametrize(
    "option, domain",
    [
        ("optimizer", "[{name: sgd, momentum: 0.9}, {name: adam}]"),
        ("schedule", "[{name: onecycle}, {name: constant}]"),
        ("class_weight", "[{0: 5.0}, null, balanced]"),
    ],
)
def test_a_training_option_searched_over_mappings_trains_each_sample_as_drawn(
    option, domain, tmp_path
):
    """Each sample of a searched mapping-valued option reaches the trial as drawn: not
    merged with the first candidate's settings (a sampled null came back as {0: 5.0})."""
    from ray.tune.experiment import Experiment
    from ray.tune.search import BasicVariantGenerator

    from models.training import TrainingOptions
    from runner.contracts import TrialInput, unpack_member
    from runner.plan import tune_runs
    from runner.runtree import _member_params

    spec = spec_of(
        "search=random",
        "search.num_samples=12",
        f"+members.mlp.training.{option}={{choice: {domain}}}",
    )
    (run,) = [r for r in tune_runs(spec, spec.members) if r.searched is not None]
    space, _ = run.search_space(spec)
    trials = Experiment(
        "e", lambda c: None, config=space, num_samples=12, storage_path=str(tmp_path)
    )
    alg = BasicVariantGenerator(random_state=0)
    alg.add_configurations([trials])
    drawn = set()
    while (trial := alg.next_trial()) is not None:
        training = unpack_member(trial.config["member"])["training"]
        sampled = trial.config["member"]["training"][option]
        options = TrainingOptions.from_params(training)
        assert getattr(options, option) == TrainingOptions(**{option: sampled}).__dict__[option]
        drawn.add(repr(sampled))
        # MLflow gets the flattened keys an unsearched member's run has (optimizer: sgd,
        # optimizer.momentum: 0.9), not the sample's own nesting (optimizer.name: sgd)
        member = TrialInput.from_config(unpack_member(trial.config["member"]))
        logged = _member_params(member)["training"]
        assert logged == options.as_params() and f"{option}.name" not in logged
    assert len(drawn) >= 2


def test_a_searched_member_needs_a_search_algorithm():
    with pytest.raises(SpecError, match=r"members \['mlp'\] have search spaces but search=none"):
        spec_of(WIDTH)
    spec = spec_of(WIDTH, LR, "search=random")
    mlp = next(m for m in spec.members if m.name == "mlp")
    assert set(mlp.search) == {"hparams.width", "training.learning_rate"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("+members.mlp.hparams.width={choice: [64, -1]}", "width must be an integer >= 1, got -1"),
        ("+members.mlp.training.learning_rate={uniform: [0.001, 20]}", "learning_rate"),
        ("+members.mlp.hparams.dropout={uniform: [0.5, 0.1]}", "low < high"),
        (
            "+members.convnet.hparams.separable={choice: [true, nope]}",
            "separable must be true or false, got 'nope'",
        ),
        (
            "+members.mlp.training.optimizer={name: sgd, momentum: {uniform: [0.5, 0.99]}}",
            r"training.optimizer.momentum: a search domain inside a setting is not searched; "
            r"search the whole setting instead, e.g. training.optimizer=\{choice: \[\{...\}",
        ),
        (  # a domain of a kind there is not
            "+members.mlp.hparams.dropout={normal: [0, 0.5]}",
            r"dropout must be .* got \{'normal': \[0, 0.5\]\} \('normal' is not a search "
            r"domain; allowed: choice, uniform, loguniform, randint\)",
        ),
        (
            "+members.mlp.training.epochs={normal: [3, 5]}",
            r"epochs must be .*\('normal' is not a search domain; allowed: choice",
        ),
        (
            "+members.convnet.hparams.filters=[16, {choice: [32, 64]}]",
            r"hparams.filters.1: a search domain inside .*=\{choice: \[\[...\], \[...\]\]\}",
        ),
    ],
)
def test_every_candidate_of_a_space_is_validated_before_anything_runs(override, message):
    cfg = composed(override, "search=random")
    with pytest.raises(SpecError, match=message):
        spec = from_config(cfg, "quickstart", "/tmp")
        from runner.data import load
        from runner.spec import check_members_against_data

        data = load(spec.data)
        check_members_against_data(spec.members, data.task, data.input_spec)


def test_a_one_key_setting_that_is_no_domain_gets_no_domain_hint():
    with pytest.raises(SpecError) as err:
        spec_of("+members.mlp.training.optimizer={momentum: 0.9}")
    assert "needs a 'name'" in str(err.value) and "search domain" not in str(err.value)


def test_bad_search_settings_are_named():
    with pytest.raises(SpecError, match="search.name must be one of"):
        spec_of("search.name=grid")
    with pytest.raises(SpecError, match="search.scheduler must be null or one of"):
        spec_of("search.scheduler=hyperband")
    for seed in ("abc", "-1", "1.5", "true"):  # Tune's searchers failed after trials had run
        with pytest.raises(SpecError, match="search.seed must be null or an integer >= 0"):
            spec_of("search=random", f"search.seed={seed}")
    with pytest.raises(SpecError, match="search.metric must be val_loss with a scheduler"):
        spec_of("search=random", "search.scheduler=asha", "search.metric=final_val_accuracy")
    with pytest.raises(SpecError, match="search.metric must be one of val_loss, final_val_acc"):
        spec_of("search=random", "search.metric=val_acc")
    # a searcher told to minimise accuracy would steer towards the worst trials
    with pytest.raises(SpecError, match="is better higher: it needs search.mode=max, got 'min'"):
        spec_of("search=optuna", "search.scheduler=null", "search.metric=final_val_accuracy")
    with pytest.raises(SpecError, match="is better lower: it needs search.mode=min, got 'max'"):
        spec_of("search=random", "search.mode=max")
    spec_of(
        "search=optuna",
        "search.scheduler=null",
        "search.metric=final_val_accuracy",
        "search.mode=max",
    )
    with pytest.raises(SpecError, match=r"^members.mlp-1: the name is taken by a sample of"):
        spec_of(
            "search=random",
            "+members.mlp-1={model: logistic}",
            "+members.mlp.hparams.width={randint: [16, 65]}",
        )


def test_asha_lets_the_most_epochs_a_sample_can_train_finish():
    from runner import plan

    spec = spec_of(
        "search=random",
        "search.scheduler=asha",
        "+members.mlp.training.epochs={choice: [2, 8]}",
        "+members.mlp.hparams.width={randint: [16, 33]}",
    )
    (run,) = [r for r in plan.tune_runs(spec, spec.members) if r.searched is not None]
    _, settings = run.search_space(spec)
    assert settings["scheduler"]._max_t > 8  # past the largest candidate's last epoch


@pytest.mark.slow
def test_asha_stops_weak_samples_and_the_ensemble_draws_from_every_finished_trial(workdir):
    db = f"sqlite:///{workdir}/mlflow.db"
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "search=random",
        "search.num_samples=6",
        "search.scheduler=asha",
        "search.seed=0",
        WIDTH,
        LR,
        "training.epochs=9",
        "~members.convnet",
        "~members.resnet",
        "~members.selu",
        f"tracking.uri={db}",
        "tracking.background_writes=true",  # the member runs written by the writer thread
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    samples = [m for m in summary["members"] if m["name"].startswith("mlp-")]
    assert len(samples) == 6
    stopped = [m for m in samples if m["status"] == "STOPPED"]
    finished = [m["name"] for m in summary["members"] if m["status"] == "FINISHED"]
    assert stopped and any(n.startswith("mlp-") for n in finished)
    assert set(summary["ensemble"]["weights"]) == set(finished)
    client = MlflowClient(db)
    for m in stopped:
        run = client.get_run(m["run_id"])
        assert run.info.status == "KILLED" and "stopped early" in run.data.tags["runner.stopped"]
    for m in samples:  # every epoch Tune reported is in the run's history, in order
        history = client.get_metric_history(m["run_id"], "val_loss")
        steps = sorted(h.step for h in history)
        assert steps == list(range(1, len(steps) + 1)) and steps, m
    params = [client.get_run(m["run_id"]).data.params for m in samples]
    assert len({(p["hparams.width"], p["training.learning_rate"]) for p in params}) > 1
    assert all(
        client.get_run(m["run_id"]).data.tags["runner.search_member"] == "mlp" for m in samples
    )


@pytest.mark.parametrize("metric", ["final_val_accuracy", "val_loss"])
def test_optuna_scores_trials_on_a_final_score_only_their_last_result_holds(tmp_path, metric):
    """Keras trials report val_loss per epoch and the final scores once, at their end;
    Optuna learns each finished trial's final score. A trial a scheduler stopped ends on an
    epoch's result (with val_loss, in other units than a final score: a standardised
    target's): Optuna records it pruned, not finished with that value."""
    pytest.importorskip("optuna", reason="search=optuna needs optuna (pip install -e '.[dev]')")
    import ray
    from ray import tune

    mode = "max" if metric == "final_val_accuracy" else "min"
    search = spec_of(
        "search=optuna",
        "search.scheduler=null",
        f"search.metric={metric}",
        f"search.mode={mode}",
        "search.num_samples=4",
        "search.seed=0",
    ).search

    def trainable(config: dict) -> None:
        for epoch in range(3):
            tune.report({"epoch": epoch + 1, "val_loss": 100.0 * config["x"]})
        if config["x"] < 0.58:  # as a trial a scheduler stopped: no final result
            return
        tune.report({"epoch": 4, "final": True, metric: config["x"]})

    settings = tune_settings(search, max_t=3)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        results = tune.Tuner(
            trainable,
            param_space={"x": tune.uniform(0.0, 1.0)},
            tune_config=tune.TuneConfig(**settings),
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    assert not results.errors, results.errors
    sampled = sorted(r.config["x"] for r in results)
    study = settings["search_alg"].searcher._ot_study  # what Optuna was told
    finished = sorted(x for x in sampled if x >= 0.58)
    assert 0 < len(finished) < len(sampled)  # both kinds of end
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.value for t in complete) == pytest.approx(finished)
    assert len(study.trials) - len(complete) == len(sampled) - len(finished)
    assert all(t.state.name == "PRUNED" for t in study.trials if t not in complete)
    assert len(sampled) == 4 and len(set(sampled)) == 4


@pytest.mark.slow
def test_optuna_search_samples_trials_that_become_ensemble_candidates(workdir):
    pytest.importorskip("optuna", reason="search=optuna needs optuna (pip install -e '.[dev]')")
    # scikit-learn members only: the searcher is under test, and no worker imports TensorFlow
    db = f"sqlite:///{workdir}/mlflow.db"
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "search=optuna",
        "search.num_samples=3",
        "search.scheduler=null",
        "members.logistic.hparams.C={loguniform: [0.001, 10.0]}",
        "~members.mlp",
        "~members.convnet",
        "~members.resnet",
        "~members.selu",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    names = {m["name"] for m in summary["members"] if m["status"] == "FINISHED"}
    samples = {n for n in names if n.startswith("logistic-")}
    assert len(names) == 4 and "svm" in names and len(samples) == 3
    assert set(summary["ensemble"]["weights"]) == names
    # one progress view over the plain members' Tune run and the searched one's
    counts = [line.split(" done")[0] for line in done.stdout.splitlines() if " done" in line]
    assert counts and all(c.endswith("/4") for c in counts) and counts[-1] == "[4/4", counts
    client = MlflowClient(db)
    rows = [m for m in summary["members"] if m["name"] in samples]
    values = {float(client.get_run(m["run_id"]).data.params["hparams.C"]) for m in rows}
    assert len(values) == 3 and all(0.001 <= c <= 10.0 for c in values)


def test_a_search_larger_than_ensemble_candidates_ensembles_its_best_members(workdir):
    # scikit-learn members only: what is under test is the ensemble stage's library pruning
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "search=random",
        "search.num_samples=5",
        "search.scheduler=null",
        "members.logistic.hparams.C={loguniform: [0.0001, 10.0]}",
        *(f"~members.{m}" for m in ("mlp", "convnet", "resnet", "selu")),
        "ensemble.candidates=3",
        f"tracking.uri=sqlite:///{workdir}/mlflow.db",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(workdir / "out")
    finished = [m["name"] for m in summary["members"] if m["status"] == "FINISHED"]
    pruned = summary["ensemble"]["pruned"]
    assert len(finished) == 6 and pruned["of"] == 6 and pruned["kept"] in (3, 4)
    # members whose predictions were let go during the sweep keep their scores in the summary
    rows = [m for m in summary["members"] if m["status"] == "FINISHED"]
    assert all(isinstance(m["val_metric"], float) and m["test_scores"] for m in rows)
    assert len(summary["ensemble"]["weights"]) == pruned["kept"]
    assert set(summary["ensemble"]["weights"]) < set(finished)
    assert f"ensembled the {pruned['kept']} best of 6 members on validation" in done.stdout


def test_asha_never_stops_a_trial_at_its_last_epoch_or_final_report():
    from types import SimpleNamespace

    from ray.tune.schedulers import ASHAScheduler

    from runner.asha import FinalKeepingASHA
    from runner.contracts import pack_member

    def trial(name: str, epochs: int, model: str = "mlp") -> SimpleNamespace:
        config = {"name": name, "model": model, "hparams": {}, "training": {"epochs": epochs}}
        return SimpleNamespace(trial_id=name, config={"member": pack_member(config)})

    decisions = {}
    for label, kind in (("plain", ASHAScheduler), ("ours", FinalKeepingASHA)):
        asha = kind(time_attr="epoch", metric="val_loss", mode="min", max_t=10, grace_period=1)
        good, short, long_ = trial("good", 5), trial("short", 1), trial("long", 5)
        once = trial("once", 20)  # a final report
        # a scikit-learn member under training.epochs=20: its fit's one epoch report, then
        # its final one (ASHA stopped it at the first, its model thrown away)
        fits = trial("fits", 20, model="logistic")
        # early stopping (or the deadline) ends this one at epoch 1 of its 5
        stopped = trial("stopped", 5)
        for t in (good, short, long_, once, fits, stopped):
            asha.on_trial_add(None, t)
        asha.on_trial_result(None, good, {"epoch": 1, "val_loss": 0.1, "final": False})
        ended = {"epoch": 1, "val_loss": 10.0, "final": False, "last_epoch": True}
        decisions[label] = [
            asha.on_trial_result(None, short, {"epoch": 1, "val_loss": 9.0, "final": False}),
            asha.on_trial_result(None, long_, {"epoch": 1, "val_loss": 9.0, "final": False}),
            asha.on_trial_result(None, once, {"epoch": 1, "val_loss": 9.0, "final": True}),
            asha.on_trial_result(None, fits, {"epoch": 1, "val_loss": 9.0, "final": False}),
            asha.on_trial_result(None, stopped, ended),
        ]
    assert decisions["plain"] == ["STOP"] * 5  # short, once, fits, stopped lose their models
    assert decisions["ours"] == ["CONTINUE", "STOP", "CONTINUE", "CONTINUE", "CONTINUE"]


def test_the_epoch_report_says_which_epoch_ends_training(monkeypatch):
    """Early stopping set stop_training before the report went out, the deadline was
    checked after it: ASHA saw neither and could stop a trial at the epoch it ended on."""
    import time

    from runner import trial

    reported = []
    monkeypatch.setattr(trial.tune, "report", reported.append)
    hook = trial._epoch_reporter(None, 5)
    assert hook(1, {"val_loss": 1.0}) is False
    assert hook(2, {"val_loss": 1.0, "last_epoch": True}) is False  # early stopping's own
    assert hook(5, {"val_loss": 1.0}) is False
    late = trial._epoch_reporter(time.time() - 1, 5)
    assert late(3, {"val_loss": 1.0}) is True and late.cut_at == 3
    assert [r["last_epoch"] for r in reported] == [False, True, True, True]


def test_a_final_search_metric_must_be_one_the_task_reports():
    from models.base import Task
    from runner.spec import check_metric_against_task

    regression = Task("regression")
    check_metric_against_task(None, regression, "final_val_rmse")
    check_metric_against_task(None, regression, "val_loss")
    with pytest.raises(
        SpecError,
        match="search.metric: final_val_accuracy is not reported for "
        "regression; allowed: val_loss, final_val_rmse, final_val_mae",
    ):
        check_metric_against_task(None, regression, "final_val_accuracy")
    classes = Task("classification", n_classes=3)
    with pytest.raises(SpecError, match="allowed: val_loss, final_val_accuracy, final_val_log"):
        check_metric_against_task(None, classes, "final_val_mae")
