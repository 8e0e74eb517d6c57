"""Every command in the README still works: overrides compose and validate, errors read as shown."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from test_spec import composed

from helpers import ROOT, read_summary, run_cli
from runner.spec import from_config

README = (ROOT / "README.md").read_text()
COMMANDS = [
    line.split("#")[0].strip()
    for line in README.splitlines()
    if line.startswith("python -m runner ") and not line.startswith("python -m runner -")
]
MULTIRUN = [line.strip() for line in README.splitlines() if line.startswith("python -m runner -m ")]


def test_readme_starts_with_the_install_and_run_command_then_pytest():
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    assert blocks[0].strip() == 'pip install -e ".[dev]" && python -m runner +experiment=quickstart'
    assert blocks[1].strip() == "pytest"
    assert "pytest" in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_runner_commands_compose_into_valid_specs(command, tmp_path):
    args = shlex.split(command)[3:]
    experiment = next(a.split("=", 1)[1] for a in args if a.startswith("+experiment="))
    overrides = [a for a in args if not a.startswith("+experiment=")]
    spec = from_config(composed(*overrides, experiment=experiment), experiment, str(tmp_path))
    assert spec.members


ENSEMBLE_COMMANDS = [
    line.split("#")[0].strip()
    for line in README.splitlines()
    if line.startswith("python -m ensembles ") and "--help" not in line
]


@pytest.mark.parametrize("command", ENSEMBLE_COMMANDS)
def test_readme_ensembles_commands_parse(command):
    from runner.reensemble import parse

    args = parse(shlex.split(command)[3:])
    assert args.experiment == "quickstart"


def test_readme_error_example_is_what_the_cli_prints(workdir: Path):
    match = re.search(r"\$ python -m runner (.*)\n(error: .*)\n", README)
    assert match, "README lost its error example"
    done = run_cli(workdir, *shlex.split(match.group(1)))
    assert done.returncode == 2
    assert done.stderr.strip() == match.group(2)


@pytest.mark.slow
def test_readme_multirun_command_runs_one_sweep_per_value(workdir: Path):
    (command,) = MULTIRUN
    args = shlex.split(command)[3:]
    db = f"sqlite:///{workdir}/mlflow.db"
    done = run_cli(workdir, *args, f"tracking.uri={db}", "hydra.sweep.dir=multi")
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [read_summary(workdir / "multi" / str(i)) for i in (0, 1)]
    assert [s["ensemble"]["method"] for s in summaries] == ["weighted", "greedy"]
    assert summaries[0]["sweep_id"] != summaries[1]["sweep_id"]
    client = MlflowClient(db)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    parents = client.search_runs([experiment], "tags.`runner.role` = 'sweep'")
    assert sorted(r.info.run_id for r in parents) == sorted(s["parent_run_id"] for s in summaries)
    assert all(r.info.status == "FINISHED" for r in client.search_runs([experiment]))


def test_help_lists_experiments_groups_and_common_overrides(workdir: Path):
    done = run_cli(workdir, "--help")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    from runner.__main__ import known_experiments

    assert f"experiment: {', '.join(known_experiments())}" in lines
    assert any(line.startswith("ensemble: greedy, mean, stacking, weighted") for line in lines)
    assert "Common overrides:" in lines
    assert any(line.strip().startswith("runner.verbose=0|1|2") for line in lines)
    assert not any(line.startswith("Your experiments") for line in lines)
    # a folder of the user's added with hydra.searchpath, which Hydra's list leaves out
    (workdir / "conf" / "experiment").mkdir(parents=True)
    (workdir / "conf" / "experiment" / "mine.yaml").write_text("# @package _global_\n")
    done = run_cli(workdir, "--help", f"hydra.searchpath=[file://{workdir}/conf]")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"Your experiments ({workdir}/conf): mine"


def help_overrides() -> list[list[str]]:
    """The overrides of ``--help``'s "Common overrides" list (literal values only)."""
    text = OmegaConf.load(ROOT / "conf" / "config.yaml").hydra.help.footer
    lines = text.split("Common overrides:", 1)[1].split("\n\n", 1)[0].splitlines()
    examples = [re.split(r"\s{2,}", line.strip())[0] for line in lines if line.strip()]
    return [e.split() for e in examples if "|" not in e and "ID" not in e]


@pytest.mark.parametrize("overrides", help_overrides(), ids=" ".join)
def test_help_examples_compose(overrides):
    """Hydra refuses keys that do not exist: a renamed option fails here, not for a user."""
    assert composed(*(a for a in overrides if not a.startswith("+experiment=")))
