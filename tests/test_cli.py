"""The command line: bad input exits non-zero with one line, before Ray or MLflow runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import INFRA_MEMBERS, SHARED_DATA, read_summary, run_cli

PENGUINS = SHARED_DATA / "penguins" / "penguins.csv"


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["+experiment=nope"], "unknown experiment 'nope'; known experiments: fashion_zoo, "),
        ([], "no experiment selected; pass +experiment=NAME"),
        (["members.mlp.model=resnet9000"], "unknown model 'resnet9000'; known models:"),
        (["training.epochs=0"], "epochs must be an integer >= 1, got 0"),
        (["data.val_fraction=1.2"], "data.val_fraction: must be a number in (0, 1), got 1.2"),
        (["data.val_fraction=0.6", "data.test_fraction=0.4"], "0.6 + 0.4 = 1"),
        (["tracking.uri=mongodb://db/x"], "unknown scheme 'mongodb' in 'mongodb://db/x'"),
        (["members.mlp.hparams.dropout=3"], "dropout must be a number in [0.0, 1.0), got 3"),
        (["+members.mlp.training.optimizer=adamz"], "optimizer must be one of"),
        (["schedule=onecycle", "training.schedule.max_lr=-1"], "max_lr"),
        (  # Hydra merged the default adam's beta_1 and beta_2 into it: sgd "has no beta_1"
            ["+training.optimizer={name:sgd,momentum:0.5}"],
            "training.optimizer names 'sgd' but also holds beta_1, beta_2 from the 'adam' "
            "optimizer Hydra chose by default",
        ),
        (["members.mlp.hparams.activation=sigmoidal"], "got 'sigmoidal'"),
        (["data=csv", "data.path=/nope/table.csv", "data.target=y"], "/nope/table.csv"),
        (["data.name=imagenet"], "unknown dataset 'imagenet'; known: california_housing"),
        # Hydra's own errors (a misspelled key, an override it cannot parse) on one line too
        (["data.targt=y"], "Could not override 'data.targt'; To append to your config use"),
        (["runner.fold=3"], "Key 'fold' is not in struct; did you mean runner.folds?"),
        (["optimizer.momentum=0.9"], "in struct; did you mean training.optimizer.momentum?"),
        (["training.epochs"], "Error parsing override 'training.epochs'"),
        (["-m", "--cfg", "job"], "Only one of --run, --multirun, --cfg, --info and"),
        # -m after an override (Hydra's parser refused it), a sweep beside the misspelled key
        (["-m", "runner.fold=3", "training.epochs=1,2"], "in struct; did you mean runner.folds?"),
        (
            ["optimizer=adamx"],  # the options stay in the line; the search path does not
            "Could not find 'optimizer/adamx'; Available options in 'optimizer': adagrad, adam,",
        ),
        (
            [
                "+experiment=tabular",
                f"data.path={PENGUINS}",
                "data.target=species",
                "data.task=classification",
            ]
            + ["members.lightgbm.hparams.num_leaves=-1"],
            "members.lightgbm.hparams: model 'lightgbm': lightgbm refuses these settings",
        ),
        (
            ["search=random", "members.convnet.hparams.filters={choice: [[16, 32], [32, 64]]}"],
            "drop the list and add the domain: '~members.convnet.hparams.filters' "
            "'+members.convnet.hparams.filters={choice: [[...], [...]]}'",
        ),
        (  # an unset environment variable or a missing key in ${...}: a traceback before
            ["members.mlp.model=${oc.env:RUNNER_TEST_UNSET}"],
            "members.mlp.model=${oc.env:RUNNER_TEST_UNSET}: KeyError raised while resolving "
            "interpolation: \"Environment variable 'RUNNER_TEST_UNSET' not found\"",
        ),
        (
            ["training.epochs=${training.nope}"],
            "training.epochs=${training.nope}: Interpolation key 'training.nope' not found",
        ),
        (  # digits' 360 validation rows give no finite 99.9% quantile
            ["ensemble.coverage=0.999"],
            "ensemble.coverage=0.999 needs at least 999 calibration rows for finite intervals "
            "(or prediction sets short of every class); the validation rows are 360",
        ),
    ],
    ids=[
        "unknown-experiment",
        "no-experiment",
        "unknown-model",
        "zero-epochs",
        "val-fraction",
        "fractions-sum",
        "tracking-scheme",
        "hparam-value",
        "optimizer",
        "schedule-value",
        "optimizer-merged-into-default",
        "activation",
        "csv-path",
        "dataset",
        "hydra-unknown-key",
        "hydra-key-misspelled",
        "hydra-key-misplaced",
        "hydra-override-syntax",
        "hydra-flags-together",
        "hydra-multirun-after-overrides",
        "hydra-unknown-option",
        "booster-value",
        "list-domain",
        "unset-env",
        "missing-interpolation",
        "coverage-rows",
    ],
)
def test_bad_input_fails_in_one_line_and_creates_no_mlflow_run(workdir, overrides, expected):
    if overrides and overrides[0].startswith("+experiment"):
        args = overrides
    else:
        args = [*(["+experiment=quickstart"] if overrides else []), *overrides]
    done = run_cli(workdir, f"tracking.uri=sqlite:///{workdir}/mlflow.db", *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    # Nothing was tracked: the store was never even opened, and Ray never started.
    assert not (workdir / "mlflow.db").exists()
    assert not (workdir / "ray_results").exists()


def test_resuming_a_sweep_there_is_not_fails_in_one_line_and_trains_nothing(workdir):
    """runner.resume=true with a mistyped sweep id trained the whole sweep anew."""
    db = f"tracking.uri=sqlite:///{workdir}/mlflow.db"
    for extra, said in (
        (
            ["runner.sweep_id=never-was"],
            "error: runner.resume=true but experiment 'quickstart' has no sweep 'never-was' "
            "(unfinished: none); drop runner.resume to start it anew",
        ),
        ([], "error: runner.resume=true but experiment 'quickstart' has no unfinished sweep"),
    ):
        done = run_cli(workdir, "+experiment=quickstart", db, "runner.resume=true", *extra)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(said), done.stderr
    # search=random with nothing to search trained each member once, in silence
    idle = run_cli(workdir, "+experiment=quickstart", db, "runner.resume=true", "search=random")
    assert idle.returncode == 2 and idle.stderr.startswith(
        "note: search=random has nothing to sample: no member has a search space"
    ), idle.stderr
    forced = run_cli(workdir, "+experiment=quickstart", db, "runner.resume=force")
    assert forced.returncode == 2 and forced.stderr.startswith(  # the option as it was given
        "error: runner.resume=force but experiment 'quickstart' has no unfinished sweep"
    ), forced.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(db.split("=", 1)[1])
    experiment = client.get_experiment_by_name("quickstart")
    assert experiment is None or not client.search_runs([experiment.experiment_id])


def test_duplicate_member_names_in_a_user_experiment_fail(workdir):
    """A user's own experiment dir (hydra.searchpath) with a members list naming mlp twice."""
    (workdir / "conf" / "experiment").mkdir(parents=True)
    (workdir / "conf" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\nmembers:\n  - {model: mlp}\n  - {model: logistic}\n  - {model: mlp}\n"
    )
    done = run_cli(
        workdir,
        f"hydra.searchpath=[file://{workdir}/conf]",
        "+experiment=mine",
        f"tracking.uri=sqlite:///{workdir}/mlflow.db",
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: members: duplicate member name 'mlp'; give each member its own"
    )
    assert not (workdir / "mlflow.db").exists()


def test_a_users_config_file_named_as_one_of_the_runners_is_said_to_be_unread(workdir):
    """A copy of quickstart.yaml edited in the user's folder composed the runner's own,
    silently."""
    (workdir / "conf" / "experiment").mkdir(parents=True)
    (workdir / "conf" / "experiment" / "quickstart.yaml").write_text(
        "# @package _global_\nmembers:\n  - {model: logistic}\n"
    )
    (workdir / "conf" / "experiment" / "mine.yaml").write_text("# @package _global_\n")
    for where in (f"hydra.searchpath=[file://{workdir}/conf]", f"--config-dir={workdir}/conf"):
        done = run_cli(workdir, where, "+experiment=quickstart", "--cfg", "job")
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == (
            f"warning: {workdir}/conf/experiment/quickstart.yaml is not read: the runner's own "
            "experiment/quickstart.yaml of the same name comes first on Hydra's search path; "
            "give yours another name"
        )


def test_a_csv_without_the_target_column_fails_before_training(workdir):
    (workdir / "table.csv").write_text("a,b,colour\n1,2,red\n3,4,blue\n5,6,red\n")
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "data=csv",
        "data.path=table.csv",
        "data.target=price",
        f"tracking.uri=sqlite:///{workdir}/mlflow.db",
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "target column 'price' is not in table.csv; available columns: a, b, colour" in line
    assert not (workdir / "mlflow.db").exists()


def test_hydra_errors_become_one_line_and_stderr_is_held_only_until_the_job_starts(capsys):
    import sys

    from runner.hydra_errors import job_started, one_line, run_holding_stderr

    message = (
        "Could not override 'data.targt'.\nTo append to your config use +data.targt=y\n"
        "Key 'targt' is not in struct\n    full_key: data.targt\n    object_type=dict\n\n"
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n"
    )
    assert one_line(message) == (
        "Could not override 'data.targt'; To append to your config use +data.targt=y; "
        "Key 'targt' is not in struct"
    )
    warned = "/x/y.py:12: UserWarning: something\n  warnings.warn('something')\n" + message
    assert one_line(warned) == one_line(message)  # a warning printed before it is no part
    # a YAML error in a user's config file: where it is, not the traceback's first line
    parsed = (
        'Traceback (most recent call last):\n  File "/h/utils.py", line 220, in run\n'
        "    return func()\nyaml.parser.ParserError: while parsing a flow mapping\n"
        '  in "/c/experiment/mine.yaml", line 3, column 6\n'
        "expected ',' or '}', but got ':'\n"
        '  in "/c/experiment/mine.yaml", line 4, column 4\n'
    )
    assert one_line(parsed) == (
        "yaml.parser.ParserError: while parsing a flow mapping (in /c/experiment/mine.yaml, "
        "line 3, column 6); expected ',' or '}', but got ':' (in /c/experiment/mine.yaml, "
        "line 4, column 4)"
    )

    def fails_before_the_job() -> None:
        sys.stderr.write(message)
        sys.exit(1)

    with pytest.raises(SystemExit) as stop:
        run_holding_stderr(fails_before_the_job)
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"error: {one_line(message)}\n"

    def job_fails() -> None:  # once the job runs, what it writes passes through unchanged
        sys.stderr.write("held\n")
        job_started()
        sys.stderr.write("a line\nand another\n")
        sys.exit(1)

    with pytest.raises(SystemExit) as stop:
        run_holding_stderr(job_fails)
    assert stop.value.code == 1
    assert capsys.readouterr().err == "held\na line\nand another\n"
    assert type(sys.stderr).__name__ != "HeldStderr"


def test_stderr_masks_uri_passwords_once_the_job_runs():
    """Hydra prints the overrides of a job that raised: a tracking URI's password with them."""
    import io

    from runner.hydra_errors import HeldStderr, redact_credentials

    line = "overrides: ['tracking.uri=postgresql://u:pw@h:5432/db', 'x=http://host:5000/p']"
    assert redact_credentials(line) == (
        "overrides: ['tracking.uri=postgresql://u:***@h:5432/db', 'x=http://host:5000/p']"
    )
    assert redact_credentials("x=https://h/api?user=me&token=t0k&api_key=k3y#top y") == (
        "x=https://h/api?user=me&token=***&api_key=***#top y"
    )
    assert redact_credentials("in 'http://SEKRET@127.0.0.1:5077' and postgresql://bob@db") == (
        "in 'http://***@127.0.0.1:5077' and postgresql://bob@db"
    )
    assert redact_credentials("at http://SEKRET:@h:5077/x") == "at http://***@h:5077/x"
    out = io.StringIO()
    held = HeldStderr(out)
    held.write("held http://a:b@h ")
    held.release()
    held.write("then https://user:tok3n@example.com/api")
    assert out.getvalue() == "held http://a:***@h then https://user:***@example.com/api"


def test_a_multirun_job_with_bad_input_stops_alone_and_the_command_exits_2(workdir):
    """Hydra runs a multirun's other jobs when one fails; a job's bad input (one line) had
    exited the whole command, so the jobs after it never ran."""
    done = run_cli(
        workdir,
        "-m",
        "+experiment=quickstart",
        "smoke=true",
        *INFRA_MEMBERS,
        "~members.mlp",
        "members.logistic.hparams.C=-1,0.5",
        f"tracking.uri=sqlite:///{workdir}/mlflow.db",
        "hydra.sweep.dir=multi",
    )
    assert done.returncode == 2, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(said) == 2 and "Traceback" not in done.stderr, done.stderr
    assert said[0].startswith("error: members.logistic.hparams: model 'logistic': The 'C' ")
    assert said[1] == "error: multirun job(s) #0 stopped (each said why above)"
    assert not (workdir / "multi" / "0" / "summary.json").exists()
    members = read_summary(workdir / "multi" / "1")["members"]
    assert sorted(m["name"] for m in members if m["status"] == "FINISHED") == ["logistic", "svm"]


def test_with_hydra_job_chdir_relative_paths_still_mean_where_the_command_was_typed(workdir):
    """hydra.job.chdir=true had put the store and Tune's results in each run's output folder,
    where the next run, a resume or python -m ensembles never looked."""
    done = run_cli(
        workdir,
        "+experiment=quickstart",
        "smoke=true",
        *INFRA_MEMBERS,
        "~members.mlp",
        "hydra.job.chdir=true",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (workdir / "mlflow.db").is_file() and (workdir / "ray_results").is_dir()
    assert not (workdir / "out" / "mlflow.db").exists()
    assert read_summary(workdir / "out")["tracking_uri"] == "sqlite:///mlflow.db"


def test_an_experiment_deleted_in_mlflow_is_said_in_one_line(workdir):
    """Deleted in the UI, the experiment keeps its name: creating a run in it raised a
    traceback (exit 1)."""
    from mlflow.tracking import MlflowClient

    db = f"sqlite:///{workdir}/mlflow.db"
    client = MlflowClient(db)
    client.delete_experiment(client.create_experiment("quickstart"))
    args = ("+experiment=quickstart", "smoke=true", *INFRA_MEMBERS, f"tracking.uri={db}")
    for resume in ([], ["runner.resume=true"]):  # resuming says the same, not "no sweep"
        done = run_cli(workdir, *args, *resume)
        assert done.returncode == 2, done.stderr[-3000:]
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: experiment_name: MLflow experiment 'quickstart' (id ")
        assert "is deleted; restore it (mlflow experiments restore --experiment-id " in line
    assert not client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])


def test_a_key_hydra_does_not_know_is_compared_with_the_keys_it_does():
    from runner.hydra_errors import closest_key

    config = {
        "runner": {"folds": None, "seed": 0},
        "training": {"epochs": 3, "optimizer": {"name": "adam"}},
        "members": {"mlp": {"model": "mlp", "hparams": {"depth": 2}}},
    }
    assert closest_key(config, "runner.fold") == "runner.folds"
    assert closest_key(config, "optimizer.name") == "training.optimizer.name"
    assert closest_key(config, "members.mlp.hparam.depth") == "members.mlp.hparams.depth"
    assert closest_key(config, "runner.zzz") is None
    assert closest_key(config, "nothing.like.it") is None
    assert closest_key({}, "runner.fold") is None


def _users_experiments(folder: Path) -> Path:
    """A user's config folder with two experiments of their own: ``mine`` (an MLP and a
    logistic regression on digits) and ``extra`` (one k-NN member more)."""
    (folder / "experiment").mkdir(parents=True)
    (folder / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - /model@members.small: mlp\n"
        "  - /model@members.lr: logistic\n  - override /data: digits\n"
    )
    (folder / "experiment" / "extra.yaml").write_text(
        "# @package _global_\ndefaults:\n  - /model@members.knn: knn\n"
    )
    return folder


def test_a_users_experiments_compose_however_hydra_is_pointed_at_them(workdir):
    """The experiment check rebuilt Hydra's search path from the command line: it refused an
    experiment found through --config-path (a copy of the whole conf/) or an interpolated
    hydra.searchpath, and said "unknown experiment" for a --config-dir that is not there."""
    import shutil

    from runner import CONF_DIR
    from runner.hydra_errors import extra_config_dirs

    own = _users_experiments(workdir / "myconf")
    whole = workdir / "conf2"
    shutil.copytree(CONF_DIR, whole)
    shutil.copy(own / "experiment" / "mine.yaml", whole / "experiment" / "mine.yaml")
    done = run_cli(workdir, "--config-path", str(whole), "+experiment=mine", "--cfg", "job")
    assert done.returncode == 0 and "small:" in done.stdout, done.stderr[-2000:]
    assert extra_config_dirs(["hydra.searchpath=[file://${oc.env:HOME}/c]"]) is None
    assert extra_config_dirs(["--config-dir", str(workdir / "nope")]) is None  # Hydra says
    assert extra_config_dirs(["--config-dir", str(own)]) == [own]
    missing = run_cli(workdir, "--config-dir", str(workdir / "myconff"), "+experiment=mine")
    assert missing.returncode == 2 and missing.stderr.strip() == (
        f"error: config folder {workdir / 'myconff'} (--config-dir or hydra.searchpath) is not "
        "a folder"
    )
    searched = run_cli(workdir, f"hydra.searchpath=[file://{workdir}/cnf]", "+experiment=mine")
    assert searched.returncode == 2 and f"config folder {workdir}/cnf (" in searched.stderr


def test_a_users_experiment_gets_the_key_hint_and_several_experiments_a_name(workdir):
    own = _users_experiments(workdir / "myconf")
    typo = run_cli(workdir, "--config-dir", str(own), "+experiment=mine", "training.epoch=3")
    assert typo.returncode == 2 and "did you mean training.epochs?" in typo.stderr, typo.stderr
    both = run_cli(
        workdir,
        "--config-dir",
        str(own),
        "+experiment=[mine,extra]",
        f"tracking.uri=sqlite:///{workdir}/mlflow.db",
    )
    assert both.returncode == 2
    assert both.stderr.strip() == (
        "error: +experiment=[mine,extra] selects several experiments: name the MLflow "
        "experiment their runs go to with experiment_name=NAME"
    )
    assert not (workdir / "mlflow.db").exists()


def test_the_job_log_file_masks_uri_passwords_in_messages_and_tracebacks(tmp_path):
    """Hydra's job log file (``__main__.log``) takes every record the console does: a store
    error logged mid-sweep wrote the tracking password there in plain text."""
    import logging

    from runner.hydra_errors import mask_log_handlers

    root = logging.getLogger()
    handler = logging.FileHandler(tmp_path / "__main__.log")
    root.addHandler(handler)
    try:
        mask_log_handlers()
        mask_log_handlers()  # once per job of a multirun: one filter still
        assert len(handler.filters) == 1
        uri = "http://alice:Zq7SecretPw@127.0.0.1:5000"
        logging.getLogger("runner.runtree").warning("could not end the runs (%s)", f"{uri}/api")
        try:
            raise ConnectionError(f"API request to {uri}/api/2.0 failed")
        except ConnectionError:
            logging.getLogger("runner").exception("store down")
        # a call whose arguments miss its format is logging's to report (on stderr), not an
        # error raised at the caller (pytest's own handlers, which raise, kept out)
        alone = logging.getLogger("runner-test-bad-format")
        alone.propagate = False
        alone.addHandler(handler)
        try:
            alone.warning("a %s %s", 1)
        finally:
            alone.removeHandler(handler)
    finally:
        root.removeHandler(handler)
        handler.close()
    text = (tmp_path / "__main__.log").read_text()
    assert "Zq7SecretPw" not in text, text
    assert "alice:***@127.0.0.1" in text and "ConnectionError: API request" in text, text


def test_a_merged_optimizer_mapping_names_only_the_default_groups_options():
    """A typo of the user's own (momentom) was said to come from the default adam."""
    from runner.__main__ import _merged_into_group

    raw = {"training": {"optimizer": {"name": "sgd", "beta_1": 0.9, "momentom": 0.5}}}
    said = _merged_into_group(raw, {"optimizer": "adam", "schedule": "constant"})
    assert "also holds beta_1 from the 'adam' optimizer" in said and "momentom" not in said
    typo_only = {"training": {"optimizer": {"name": "sgd", "momentom": 0.5}}}
    assert _merged_into_group(typo_only, {"optimizer": "adam"}) is None  # the check says it
    assert _merged_into_group(raw, {"optimizer": "sgd"}) is None  # chosen as a group: fine
