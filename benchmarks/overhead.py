"""The runner's overhead: the same members trained three ways, each cold in its own process.

    python benchmarks/overhead.py [--experiment overhead|overhead_small] [--members N]
                                  [--epochs E] [--ways a,b,c] [--json out.json]
                                  [-- extra Hydra overrides]
    python benchmarks/overhead.py --memory [--sizes 8,64] [--json out.json]

(a) a sequential loop in one process: no Ray, no MLflow; (b) plain Ray Tune, one CPU per trial,
with Tune's own ``MLflowLoggerCallback``; (c) ``python -m runner +experiment=overhead``. Every
way trains the members Hydra composes from ``conf/experiment/overhead.yaml`` (eight members,
120 epochs; the first N of them, or copies with other seeds beyond eight) or
``overhead_small.yaml`` (four members, 40 epochs, early stopping 5: a sweep a user starts while
iterating, where the runner's fixed cost weighs most) on the same split, with the project's own
code (``runner.data``, ``models``), so only the orchestration differs. Each way runs as a fresh
subprocess in a fresh temporary directory (its own imports, Ray start-up and MLflow store) and
its whole wall time is measured from outside (``--repeats`` runs the ways in turn and keeps
each one's median run). Per-trial overhead is a trial's wall time minus its time inside
``fit``; a Tune trial's wall time is its MLflow run's span on the driver (from the trial's
start to the end of its logging), Tune's own ``time_total_s`` is reported beside it (see
``_trial_row``). The first trial on each worker pays the TensorFlow import, so medians are also
given after it. Each way's timeline (seconds from launch to its first trial's start, its last
trial's end, and exit) shows where time goes before and after the trials.

``--memory`` runs the runner with N tiny members for each N in ``--sizes`` and reports the
driver's peak resident memory (VmHWM): it should stay flat as members grow.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from machine import busy_cpu_seconds, describe

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
EXPERIMENTS = {  # experiment -> the goals of the runner's wall time against the other ways
    "overhead": {"c/a": 0.9, "c/b": 1.05},
    "overhead_small": {"c/a": 0.85, "c/b": 0.85},
}
WAYS = {
    "a": "sequential loop",
    "b": "Ray Tune + MLflowLoggerCallback",
    "c": "python -m runner",
}
MEDIAN_OVERHEAD_TARGET_S = 1.0  # per trial, after the first on each worker
CHILD_ENV = {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}


# ------------------------------------------------------------------------------ the members


def write_experiment(folder: Path, name: str, members: dict[str, Any], training: dict) -> None:
    """A generated experiment file ``folder/experiment/name.yaml`` (add ``folder`` to Hydra's
    search path) with these members on digits."""
    import yaml

    (folder / "experiment").mkdir(parents=True, exist_ok=True)
    body = {
        "defaults": [{"override /data": "digits"}, {"override /ensemble": "weighted"}],
        "training": training,
        "members": members,
    }
    text = "# @package _global_\n" + yaml.safe_dump(body, sort_keys=False)
    (folder / "experiment" / f"{name}.yaml").write_text(text)


def compose(overrides: list[str]) -> dict[str, Any]:
    """The resolved config, as ``python -m runner <overrides>`` composes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def member_overrides(n: int | None, scratch: Path, experiment: str = "overhead") -> list[str]:
    """Overrides selecting ``n`` members of ``experiment`` (all when None): the first ``n``,
    or for more than it holds, copies of them with other seeds in a generated experiment."""
    base = compose([f"+experiment={experiment}"])
    names = list(base["members"])
    n = len(names) if n is None else n
    if n <= len(names):
        return [f"+experiment={experiment}", *(f"~members.{m}" for m in names[n:])]
    members = {}
    for i in range(n):
        name = names[i % len(names)]
        copy = i // len(names)
        members[name if copy == 0 else f"{name}_{copy}"] = {
            **base["members"][name],
            "seed": base["runner"]["seed"] + copy,
        }
    keep = ("epochs", "batch_size", "early_stopping")
    write_experiment(scratch, "overhead_n", members, {k: base["training"][k] for k in keep})
    return [f"hydra.searchpath=[file://{scratch}]", "+experiment=overhead_n"]


def plan(overrides: list[str], scratch: Path) -> dict[str, Any]:
    """The validated members and data split every way trains, as plain JSON."""
    from runner.spec import from_config

    experiment = next(a.split("=", 1)[1] for a in overrides if a.startswith("+experiment="))
    spec = from_config(compose(overrides), experiment, str(scratch / "compose"))
    return {
        "data": asdict(spec.data),
        "members": [m.to_config() for m in spec.members],
    }


def tiny_members(n: int) -> dict[str, Any]:
    """``n`` tiny members for the memory mode: a logistic regression and a one-epoch 16-unit
    MLP, alternately, each with its own seed."""
    members = {}
    for i in range(n):
        if i % 2:
            members[f"m{i:03d}"] = {"model": "mlp", "hparams": {"depth": 1, "width": 16}}
        else:
            members[f"m{i:03d}"] = {"model": "logistic", "hparams": {"C": 1.0}}
        members[f"m{i:03d}"]["seed"] = i
    return members


# -------------------------------------------------------------- the work inside every trial


def load_data(plan_data: dict[str, Any]) -> Any:
    """The split every way trains on (``runner.data.load``, as the runner loads it)."""
    from runner.data import load
    from runner.spec import DataSpec

    values = dict(plan_data)
    if values.get("classes") is not None:
        values["classes"] = tuple(values["classes"])
    return load(DataSpec(**values))


def train_one(
    member: dict[str, Any], data: Any, on_epoch: Any = None, cpus: float | None = None
) -> dict:
    """Set up, build, fit and predict one member through its registry entry, as the runner's
    trial does (same seeding, options, fit and predictions), without saving anything;
    ``cpus`` overrides the member's grant (TensorFlow's thread pools follow it)."""
    import numpy as np

    import models
    from ensembles.metrics import evaluate
    from models.training import TrainingOptions

    entry = models.get(member["model"])
    trained = entry.train(
        data.input_spec,
        data.task,
        member["hparams"],
        (data.X_train, data.y_train),
        (data.X_val, data.y_val),
        TrainingOptions.from_params(member["training"]),
        seed=member["seed"],
        cpus=member["resources"]["cpu"] if cpus is None else cpus,
        gpus=member["resources"]["gpu"],
        on_epoch=on_epoch,
    )
    val = trained.member.predict(data.X_val, data.task)
    test = trained.member.predict(data.X_test, data.task)
    scores = {f"final_val_{k}": v for k, v in evaluate(data.y_val, val).items()}
    scores.update({f"final_test_{k}": v for k, v in evaluate(data.y_test, test).items()})
    return {
        "fit_seconds": trained.fit_seconds,
        **{k: float(np.asarray(v)) for k, v in scores.items()},
    }


def child_loop(plan_json: Path, out: Path) -> None:
    """Way (a): one process, a for loop, TensorFlow threads on every core, no Ray, no MLflow."""
    marks = {"main": time.time()}
    spec = json.loads(plan_json.read_text())
    data = load_data(spec["data"])
    marks["data_loaded"] = time.time()
    trials = []
    for member in spec["members"]:
        start = time.time()
        result = train_one(member, data, cpus=os.cpu_count() or 1)  # a loop uses every core
        end = time.time()
        trials.append(
            {
                "name": member["name"],
                "model": member["model"],
                "kind": member["kind"],
                "pid": os.getpid(),
                "start": start,
                "end": end,
                "wall_seconds": end - start,
                **result,
            }
        )
    marks["done"] = time.time()
    out.write_text(json.dumps({"marks": marks, "trials": trials, "fingerprint": data.fingerprint}))


def _plain_tune_trainable(config: dict[str, Any], data: Any) -> None:
    """Way (b)'s trainable, as a user writes it: the runner's TF thread settings (the entry's
    setup), one Tune report per epoch, then a final report with the scores."""
    from ray import tune

    def report(epoch: int, logs: dict[str, float]) -> None:
        tune.report({"epoch": epoch, **logs})

    result = train_one(config["member"], data, report)
    tune.report({"final": True, **result})


def child_tune(plan_json: Path, workdir: Path, out: Path) -> None:
    """Way (b): plain Ray Tune with MLflowLoggerCallback (flat runs), 1 CPU per trial,
    reused actors as the runner; storage and MLflow store in ``workdir``."""
    marks = {"main": time.time()}
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    spec = json.loads(plan_json.read_text())
    data = load_data(spec["data"])
    marks["data_loaded"] = time.time()
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_plain_tune_trainable, data=data), {"cpu": 1}),
        param_space={"member": tune.grid_search(spec["members"])},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(
            name="overhead-b",
            storage_path=str(workdir / "tune"),
            callbacks=[
                MLflowLoggerCallback(
                    tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
                    experiment_name="overhead-b",
                )
            ],
            verbose=1,
        ),
    )
    marks["fit_start"] = time.time()
    results = tuner.fit()
    marks["fit_end"] = time.time()
    errors = [str(r.error) for r in results if r.error]
    out.write_text(json.dumps({"marks": marks, "errors": errors, "fingerprint": data.fingerprint}))
    if errors:
        raise SystemExit(f"{len(errors)} trials failed: {errors[0]}")


# ------------------------------------------------------------------ measuring from outside


@dataclass
class Launch:
    """One subprocess, measured from outside."""

    wall_seconds: float
    start: float  # epoch seconds
    end: float
    lines: list[tuple[float, str]]  # stdout lines and when they arrived (epoch seconds)
    peak_rss_mb: float | None  # the process's high-water mark (VmHWM), or the polled peak
    rss: list[tuple[float, float]] = field(default_factory=list)  # (epoch s, MB) samples
    # (epoch s, the machine's busy CPU seconds since boot) samples, every 0.1 s
    cpu: list[tuple[float, float]] = field(default_factory=list)

    def busy_between(self, first: float, last: float) -> float | None:
        """CPU seconds the whole machine was busy from ``first`` to ``last`` (epoch s),
        interpolated between samples; None without samples around that span."""
        if len(self.cpu) < 2 or first < self.cpu[0][0] or last > self.cpu[-1][0]:
            return None
        import numpy as np

        times, busy = np.array(self.cpu).T
        return float(np.interp(last, times, busy) - np.interp(first, times, busy))


def _rss_mb(pid: int) -> tuple[float | None, float | None]:
    """(current, peak) resident memory of ``pid`` in MB; psutil where /proc is missing."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        try:
            import psutil

            return psutil.Process(pid).memory_info().rss / 2**20, None
        except Exception:
            return None, None
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS"), values.get("VmHWM")


def launch(cmd: list[str], cwd: Path, label: str, timeout: float = 3600) -> Launch:
    """Run ``cmd`` in ``cwd`` with a clean MLflow environment; wall time, timestamped stdout
    lines, and the process's resident memory (sampled every 0.1 s, peak from VmHWM)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(CHILD_ENV)
    lines: list[tuple[float, str]] = []
    rss: list[tuple[float, float]] = []
    cpu: list[tuple[float, float]] = []
    with open(cwd / f"{label}.stderr", "w") as err:
        start_perf, start = time.perf_counter(), time.time()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )

        def read() -> None:
            for line in proc.stdout:
                lines.append((time.time(), line.rstrip("\n")))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        peak = hwm = None
        while True:
            now_rss, now_hwm = _rss_mb(proc.pid)
            if now_rss is not None:
                rss.append((time.time(), now_rss))
                peak = max(peak or 0.0, now_rss)
            hwm = now_hwm or hwm
            cpu.append((time.time(), busy_cpu_seconds()))
            try:
                proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if time.perf_counter() - start_perf > timeout:
                    proc.kill()
                    raise SystemExit(f"{label} timed out after {timeout:.0f} s") from None
        wall = time.perf_counter() - start_perf
        end = time.time()
        cpu.append((end, busy_cpu_seconds()))
        reader.join(timeout=10)
    if proc.returncode != 0:
        tail = (cwd / f"{label}.stderr").read_text()[-3000:]
        raise SystemExit(f"{label} failed (exit {proc.returncode}):\n{tail}")
    return Launch(wall, start, end, lines, hwm or peak, rss, cpu)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _mlflow_runs(db: Path, experiment: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=10000) if exp else []


def _tune_results(storage: Path) -> list[dict[str, Any]]:
    """The last result of every trial in Tune's storage, with its trial folder."""
    out = []
    for path in sorted(storage.rglob("result.json")):
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        if rows:
            out.append({**rows[-1], "_dir": str(path.parent)})
    return out


def _finish_trials(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Overheads per trial and their medians: over all trials, after the first trial on each
    worker, and without each worker's first Keras trial (the one that imports TensorFlow)."""
    seen: set[Any] = set()
    imported: set[Any] = set()  # workers that imported TensorFlow (in a Keras trial)
    for t in sorted(trials, key=lambda t: t["start"]):
        t["first_on_worker"] = t["pid"] not in seen
        t["pays_tf_import"] = t["kind"] == "keras" and t["pid"] not in imported
        seen.add(t["pid"])
        if t["kind"] == "keras":
            imported.add(t["pid"])
        t["overhead_seconds"] = t["wall_seconds"] - t["fit_seconds"]
    later = [t for t in trials if not t["first_on_worker"]]
    warm = [t for t in trials if not t["pays_tf_import"]]
    out = {
        "fit_seconds_total": round(sum(t["fit_seconds"] for t in trials), 2),
        "median_overhead_s": _median([t["overhead_seconds"] for t in trials]),
        "median_overhead_after_first_s": _median([t["overhead_seconds"] for t in later]),
        "median_overhead_warm_s": _median([t["overhead_seconds"] for t in warm]),
    }
    if all("waiting_seconds" in t for t in trials):
        out["waiting_seconds_total"] = round(sum(t["waiting_seconds"] for t in trials), 2)
    for t in trials:
        for k, v in list(t.items()):
            if isinstance(v, float):
                t[k] = round(v, 3)
    return {**out, "trials": sorted(trials, key=lambda t: t["start"])}


def _phases(run: Launch, marks: dict[str, float]) -> dict[str, float]:
    """Seconds from the launch to each mark, and the three spans the report compares."""
    out = {k: round(v - run.start, 2) for k, v in sorted(marks.items(), key=lambda kv: kv[1])}
    out["exit"] = round(run.end - run.start, 2)
    if "first_trial_start" in marks and "last_trial_end" in marks:
        out["span_before_first_trial"] = out["first_trial_start"]
        out["span_trials"] = round(marks["last_trial_end"] - marks["first_trial_start"], 2)
        out["span_after_last_trial"] = round(run.end - marks["last_trial_end"], 2)
    return out


def _base(run: Launch) -> dict[str, Any]:
    return {
        "wall_seconds": round(run.wall_seconds, 2),
        "peak_driver_rss_mb": None if run.peak_rss_mb is None else round(run.peak_rss_mb, 1),
    }


def way_a(plan_json: Path, tmp: Path) -> dict[str, Any]:
    run = launch(
        [
            sys.executable,
            __file__,
            "--child",
            "a",
            "--plan",
            str(plan_json),
            "--out",
            str(tmp / "a.json"),
        ],
        tmp,
        "a",
    )
    child = json.loads((tmp / "a.json").read_text())
    trials = child["trials"]
    marks = {
        **child["marks"],
        "first_trial_start": trials[0]["start"],
        "last_trial_end": trials[-1]["end"],
    }
    return {
        **_base(run),
        "fingerprint": child["fingerprint"],
        "phases": _phases(run, marks),
        **_finish_trials(trials),
    }


def way_b(plan_json: Path, tmp: Path) -> dict[str, Any]:
    run = launch(
        [
            sys.executable,
            __file__,
            "--child",
            "b",
            "--plan",
            str(plan_json),
            "--workdir",
            str(tmp),
            "--out",
            str(tmp / "b.json"),
        ],
        tmp,
        "b",
    )
    child = json.loads((tmp / "b.json").read_text())
    runs = {
        r.data.tags.get("trial_name", ""): r for r in _mlflow_runs(tmp / "mlflow.db", "overhead-b")
    }
    trials = []
    for res in _tune_results(tmp / "tune"):
        mlrun = next((r for name, r in runs.items() if name.endswith(res["trial_id"])), None)
        trials.append(_trial_row(res, res["config"]["member"], res["fit_seconds"], mlrun))
    return {
        **_base(run),
        "fingerprint": child["fingerprint"],
        "phases": _phases(run, {**child["marks"], **_trial_marks(trials)}),
        **_finish_trials(trials),
    }


def _trial_row(res: dict, member: dict, fit: float, mlrun: Any) -> dict[str, Any]:
    """One Tune trial. Its wall time is its MLflow run's span: from the driver's
    ``on_trial_start`` to the end of ``on_trial_complete`` (both ways' callbacks open and close
    the run there). ``tune_busy_seconds`` is Tune's ``time_total_s``: only the time the worker
    computed between reports, since ``tune.report`` blocks until the driver asks for the next
    result; the rest of the wall time (``waiting_seconds``) the trial waited on the driver,
    or was being started or logged. ``fit_seconds`` includes the waits inside fit."""
    row = {
        "name": member["name"],
        "model": member["model"],
        "kind": member["kind"],
        "pid": res["pid"],
        "wall_seconds": res["time_total_s"],
        "fit_seconds": fit,
        "tune_busy_seconds": res["time_total_s"],
        "start": res["timestamp"] - res["time_total_s"],
        "end": res["timestamp"],
    }
    if mlrun is not None and mlrun.info.end_time:
        row["start"] = mlrun.info.start_time / 1000
        row["end"] = mlrun.info.end_time / 1000
        row["wall_seconds"] = row["end"] - row["start"]
        row["waiting_seconds"] = row["wall_seconds"] - row["tune_busy_seconds"]
    return row


def _trial_marks(trials: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "first_trial_start": min(t["start"] for t in trials),
        "last_trial_end": max(t["end"] for t in trials),
    }


def _line_time(run: Launch, needle: str, last: bool = False) -> float | None:
    hits = [t for t, line in run.lines if needle in line]
    return (hits[-1] if last else hits[0]) if hits else None


def runner_command(overrides: list[str], tmp: Path) -> list[str]:
    """``python -m runner`` with ``overrides``, its output and Tune storage inside ``tmp``."""
    return [
        sys.executable,
        "-m",
        "runner",
        *overrides,
        "hydra.run.dir=out",
        f"runner.storage_path={tmp / 'tune'}",
    ]


def way_c(overrides: list[str], tmp: Path) -> dict[str, Any]:
    from runner.contracts import unpack_member  # the runner hands Tune its configs packed

    run = launch(runner_command(overrides, tmp), tmp, "c")
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    mlruns = _mlflow_runs(tmp / "mlflow.db", summary["experiment"])
    by_trial = {r.data.tags.get("runner.trial_id"): r for r in mlruns}
    trials = []
    for res in _tune_results(tmp / "tune"):
        info = next(Path(res["_dir"]).rglob("member.json"), None)
        fit = json.loads(info.read_text())["fit_seconds"]
        member = unpack_member(res["config"]["member"])
        trials.append(_trial_row(res, member, fit, by_trial.get(res["trial_id"])))
    marks = _trial_marks(trials)
    sweep_line = _line_time(run, "parent run ")
    if sweep_line:
        marks["parent_run_created"] = sweep_line
    for r in mlruns:
        role = r.data.tags.get("runner.role")
        if role in ("ensemble", "sweep") and r.info.end_time:
            marks[f"{role}_run_start"] = r.info.start_time / 1000
            marks[f"{role}_run_end"] = r.info.end_time / 1000
    summary_line = _line_time(run, "summary: ")
    if summary_line:
        marks["leaderboard_printed"] = summary_line
    return {
        **_base(run),
        "fingerprint": summary["data"]["fingerprint"],
        "runner_wall_seconds": summary["wall_seconds"],
        "ensemble_test_accuracy": (summary["ensemble"] or {}).get("test_metric"),
        "phases": _phases(run, marks),
        **_finish_trials(trials),
    }


# ------------------------------------------------------------------------------ reporting


def print_way(key: str, w: dict[str, Any]) -> None:
    print(
        f"\n({key}) {WAYS[key]}: wall {w['wall_seconds']:.1f} s, fit "
        f"{w['fit_seconds_total']:.1f} s in total, peak driver RSS {w['peak_driver_rss_mb']} MB"
    )
    print(
        f"  {'member':<15}{'model':<14}{'pid':>7}{'wall s':>8}{'fit s':>7}{'overhead':>9}"
        f"{'tune busy':>10}{'waiting':>8}  notes"
    )
    for t in w["trials"]:
        busy, waiting = t.get("tune_busy_seconds"), t.get("waiting_seconds")
        notes = [
            n
            for n, on in (
                ("first on worker", t["first_on_worker"]),
                ("TF import", t["pays_tf_import"]),
            )
            if on
        ]
        print(
            f"  {t['name']:<15}{t['model']:<14}{t['pid']:>7}{t['wall_seconds']:>8.2f}"
            f"{t['fit_seconds']:>7.2f}{t['overhead_seconds']:>9.2f}"
            f"{'-' if busy is None else f'{busy:.2f}':>10}"
            f"{'-' if waiting is None else f'{waiting:.2f}':>8}  {', '.join(notes)}"
        )
    print(
        f"  median overhead (wall - fit) {w['median_overhead_s']} s; after the first trial per "
        f"worker {w['median_overhead_after_first_s']} s; without TF-import trials "
        f"{w['median_overhead_warm_s']} s"
    )
    print(
        "  timeline (s from launch): "
        + ", ".join(f"{k} {v}" for k, v in w["phases"].items() if not k.startswith("span_"))
    )


def main_overhead(args: argparse.Namespace) -> dict[str, Any]:
    ways = [w for w in args.ways.split(",") if w]
    unknown = set(ways) - set(WAYS)
    if unknown:
        raise SystemExit(f"--ways: unknown {sorted(unknown)}; allowed: a, b, c")
    if args.experiment not in EXPERIMENTS:
        raise SystemExit(
            f"--experiment: unknown {args.experiment!r}; allowed: {', '.join(EXPERIMENTS)}"
        )
    if (args.members is not None and args.members < 1) or args.repeats < 1:
        raise SystemExit("--members and --repeats must be at least 1")
    targets = {
        **EXPERIMENTS[args.experiment],
        "median_overhead_after_first_s": MEDIAN_OVERHEAD_TARGET_S,
    }
    with tempfile.TemporaryDirectory(prefix="overhead-") as scratch:
        scratch = Path(scratch)
        overrides = member_overrides(args.members, scratch / "conf", args.experiment)
        if args.epochs is not None:
            overrides.append(f"training.epochs={args.epochs}")
        overrides += args.overrides
        members = plan(overrides, scratch)
        plan_json = scratch / "plan.json"
        plan_json.write_text(json.dumps(members))
        result: dict[str, Any] = {
            "machine": describe(),
            "experiment": args.experiment,
            "members": [f"{m['name']} ({m['model']})" for m in members["members"]],
            "epochs": sorted(
                {m["training"]["epochs"] for m in members["members"] if m["kind"] == "keras"}
            ),
            "overrides": overrides,
            "ways": {},
        }
        print(f"machine: {result['machine']}")
        print(
            f"{len(members['members'])} members: {', '.join(result['members'])}; "
            f"Keras epochs {result['epochs']}"
        )
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key in ways}
        for repeat in range(args.repeats):
            for key in ways:
                tmp = scratch / f"{key}{repeat}"
                tmp.mkdir()
                load = os.getloadavg()[0]
                print(f"({key}) {WAYS[key]} ...", flush=True)
                if key == "a":
                    out = way_a(plan_json, tmp)
                elif key == "b":
                    out = way_b(plan_json, tmp)
                else:
                    out = way_c(overrides, tmp)
                out["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
                runs[key].append(out)
                print_way(key, out)
                if args.keep:
                    shutil.copytree(tmp, Path(args.keep) / f"{key}{repeat}", dirs_exist_ok=True)
    for key, outs in runs.items():  # each way's median run (the lower middle one)
        ordered = sorted(outs, key=lambda o: o["wall_seconds"])
        result["ways"][key] = {
            **ordered[(len(ordered) - 1) // 2],
            "wall_seconds_runs": [o["wall_seconds"] for o in outs],
        }
    w = result["ways"]
    if len({x["fingerprint"] for x in w.values()}) > 1:
        print("warning: the ways trained on different data splits", file=sys.stderr)
    ratios = {}
    if "c" in w and "a" in w:
        ratios["c/a"] = round(w["c"]["wall_seconds"] / w["a"]["wall_seconds"], 3)
    if "c" in w and "b" in w:
        ratios["c/b"] = round(w["c"]["wall_seconds"] / w["b"]["wall_seconds"], 3)
    result["ratios"] = ratios
    result["targets"] = targets
    print(
        f"\n{'way':<36}{'wall s':>8}{'before 1st trial':>18}{'trials':>8}{'after last':>12}"
        f"{'median overhead after 1st':>27}"
    )
    for k, v in w.items():
        ph = v["phases"]
        print(
            f"({k}) {WAYS[k]:<32}{v['wall_seconds']:>8.1f}{ph['span_before_first_trial']:>18.1f}"
            f"{ph['span_trials']:>8.1f}{ph['span_after_last_trial']:>12.1f}"
            f"{v['median_overhead_after_first_s']!s:>27}"
        )
    if len(next(iter(runs.values()), [])) > 1:
        print("runs: " + "; ".join(f"({k}) {v['wall_seconds_runs']}" for k, v in w.items()))
    for k, v in ratios.items():
        print(f"{k} = {v:.3f} (target <= {targets[k]})")
    if "c" in w:
        print(
            f"(c) median per-trial overhead after the first per worker "
            f"{w['c']['median_overhead_after_first_s']} s (target < {MEDIAN_OVERHEAD_TARGET_S})"
        )
    return result


def main_memory(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = []
    print(f"machine: {describe()}")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix=f"overhead-memory-{n}-") as tmp:
            tmp = Path(tmp)
            write_experiment(
                tmp / "conf",
                "overhead_memory",
                tiny_members(n),
                {"epochs": 1, "batch_size": 32, "early_stopping": 0},
            )
            cmd = [
                sys.executable,
                "-m",
                "runner",
                f"hydra.searchpath=[file://{tmp / 'conf'}]",
                "+experiment=overhead_memory",
                "hydra.run.dir=out",
                f"runner.storage_path={tmp / 'tune'}",
                *args.overrides,
            ]
            print(f"{n} tiny members ...", flush=True)
            run = launch(cmd, tmp, "memory")
            summary = json.loads((tmp / "out" / "summary.json").read_text())
            mlruns = _mlflow_runs(tmp / "mlflow.db", summary["experiment"])
        row = {
            "members": n,
            "finished": sum(m["status"] == "FINISHED" for m in summary["members"]),
            "wall_seconds": round(run.wall_seconds, 2),
            "peak_driver_rss_mb": round(run.peak_rss_mb, 1) if run.peak_rss_mb else None,
            **_memory_phases(run, mlruns),
        }
        runs.append(row)
        print(
            f"  {n} members: wall {row['wall_seconds']:.1f} s, driver peak "
            f"{row['peak_driver_rss_mb']} MB; peak before the trials "
            f"{row['peak_rss_mb']['before_trials']} MB, during them "
            f"{row['peak_rss_mb']['trials']} MB ({row['rss_at_first_trial_end_mb']} MB after "
            f"the first, {row['rss_at_last_trial_end_mb']} MB after the last: "
            f"{row['rss_growth_per_trial_kb']} kB per trial), in the ensemble stage "
            f"{row['peak_rss_mb']['ensemble']} MB, after it {row['peak_rss_mb']['after']} MB"
        )
    result = {"machine": describe(), "memory": runs}
    if len(runs) > 1 and runs[0]["peak_driver_rss_mb"]:
        result["peak_ratio"] = round(
            runs[-1]["peak_driver_rss_mb"] / runs[0]["peak_driver_rss_mb"], 3
        )
        print(
            f"peak driver RSS {runs[-1]['members']} / {runs[0]['members']} members: "
            f"{result['peak_ratio']:.3f}"
        )
    return result


def _memory_phases(run: Launch, mlruns: list[Any]) -> dict[str, Any]:
    """The driver's peak RSS (sampled) before, during and after the trials, in the ensemble
    stage (last trial's end to the ensemble run's end), and its growth per trial."""
    members = sorted(
        (r for r in mlruns if r.data.tags.get("runner.role") == "member" and r.info.end_time),
        key=lambda r: r.info.end_time,
    )
    ensemble = [r for r in mlruns if r.data.tags.get("runner.role") == "ensemble"]
    if not members:
        return {"peak_rss_mb": {}}
    first_start = min(r.info.start_time for r in members) / 1000
    first_end, last_end = members[0].info.end_time / 1000, members[-1].info.end_time / 1000
    ens_end = ensemble[0].info.end_time / 1000 if ensemble and ensemble[0].info.end_time else None
    bounds = {
        "before_trials": (run.start, first_start),
        "trials": (first_start, last_end),
        "ensemble": (last_end, ens_end or last_end),
        "after": (ens_end or last_end, run.end),
    }
    peaks = {}
    for phase, (lo, hi) in bounds.items():
        values = [mb for t, mb in run.rss if lo <= t <= hi]
        peaks[phase] = round(max(values), 1) if values else None

    def at(t: float) -> float | None:
        before = [mb for ts, mb in run.rss if ts <= t]
        return before[-1] if before else None

    out: dict[str, Any] = {
        "peak_rss_mb": peaks,
        "rss_at_first_trial_end_mb": at(first_end),
        "rss_at_last_trial_end_mb": at(last_end),
        "rss_growth_per_trial_kb": None,
    }
    if len(members) > 1 and out["rss_at_first_trial_end_mb"] and out["rss_at_last_trial_end_mb"]:
        growth = out["rss_at_last_trial_end_mb"] - out["rss_at_first_trial_end_mb"]
        out["rss_growth_per_trial_kb"] = round(growth * 1024 / (len(members) - 1), 1)
    for key in ("rss_at_first_trial_end_mb", "rss_at_last_trial_end_mb"):
        out[key] = None if out[key] is None else round(out[key], 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--experiment",
        default="overhead",
        help="the members: overhead (eight, 120 epochs) or overhead_small (four, 40 epochs, "
        "early stopping 5)",
    )
    parser.add_argument("--members", type=int, help="members to train (default: all)")
    parser.add_argument("--epochs", type=int, help="Keras epochs (default: the experiment's)")
    parser.add_argument("--ways", default="a,b,c", help="which ways to run (default a,b,c)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each way (median kept)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="measure the driver's peak memory for each of --sizes instead",
    )
    parser.add_argument("--sizes", default="8,64", help="member counts of --memory (8,64)")
    parser.add_argument("--keep", help="copy each way's working folder into this folder")
    parser.add_argument("--child", choices=["a", "b"], help=argparse.SUPPRESS)
    parser.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    if args.child == "a":
        child_loop(args.plan, args.out)
        return
    if args.child == "b":
        child_tune(args.plan, args.workdir, args.out)
        return
    result = main_memory(args) if args.memory else main_overhead(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
