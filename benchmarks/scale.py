"""Sweeps of many sub-second trials: the runner against a plain Ray Tune script.

    python benchmarks/scale.py [--sizes 50,200,1000,2000] [--ways tune,runner]
                               [--json out.json] [--plot scale.png] [-- RUNNER OVERRIDES]

One searched scikit-learn member (logistic regression on digits, ``C`` log-uniform) becomes N
trials. (tune) a plain Tune script samples the same ``C`` and trains the same member through
the project's registry on the same split, with no tracking, checkpoints or ensemble; (runner)
``python -m runner`` with ``search=random search.num_samples=N``: every trial tracked in
MLflow with its artifacts, then the ensemble stage over the N candidates and its reports.
Each run is a fresh subprocess in a fresh directory, measured from outside: wall time, time
before the first trial starts, the trials phase (first start to last end, from Tune's own
results), the phase after the last trial, the trials phase per trial, the CPU every process
spent on it per trial and the cores busy meanwhile (the machine's busy time: run it alone),
and the driver's peak resident memory (VmHWM). Goals (ratios within one run of this
script): at the largest size the runner's wall is at most 1.2x the plain script's and its
after-last-trial phase at most 15 s; the runner's peak RSS at the largest size is at most
1.5x that at the smallest. When the trials phase keeps every core busy, the wall ratio can
be no lower than the ratio of CPU per trial.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import describe
from overhead import (
    _tune_results,
    launch,
    load_data,
    plan,
    runner_command,
    train_one,
    write_experiment,
)

WAYS = {"tune": "plain Ray Tune script, no tracking", "runner": "python -m runner"}
SEARCHED = {"model": "logistic", "hparams": {"C": {"loguniform": [0.001, 10.0]}, "max_iter": 200}}
GOALS = {"wall_runner/tune": 1.2, "after_last_trial_s": 15.0, "rss_largest/smallest": 1.5}


def experiment_overrides(scratch: Path, trials: int) -> list[str]:
    """Overrides running the generated one-member experiment as ``trials`` random trials."""
    write_experiment(scratch, "scale", {"logistic": SEARCHED}, {})
    return [
        f"hydra.searchpath=[file://{scratch}]",
        "+experiment=scale",
        "search=random",
        f"search.num_samples={trials}",
    ]


def _plain_trainable(config: dict[str, Any], member: dict[str, Any], data: Any) -> None:
    """The plain script's trial: the member with the sampled ``C``, one final report."""
    from ray import tune

    sampled = {**member, "hparams": {**member["hparams"], "C": config["C"]}}
    tune.report(train_one(sampled, data))


def child_tune(plan_json: Path, workdir: Path, trials: int) -> None:
    """Way (tune): as a user writes it, one CPU per trial, actors reused (without that, each
    trial starts a new worker process and pays its imports: seconds per trial)."""
    from ray import tune

    spec = json.loads(plan_json.read_text())
    data = load_data(spec["data"])
    member = spec["members"][0]
    low, high = SEARCHED["hparams"]["C"]["loguniform"]
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(_plain_trainable, member=member, data=data), {"cpu": 1}
        ),
        param_space={"C": tune.loguniform(low, high)},
        tune_config=tune.TuneConfig(num_samples=trials, reuse_actors=True),
        run_config=tune.RunConfig(name="scale", storage_path=str(workdir / "tune"), verbose=0),
    )
    results = tuner.fit()
    errors = [str(r.error) for r in results if r.error]
    if errors:
        raise SystemExit(f"{len(errors)} trials failed: {errors[0]}")


def _timeline(run: Any, storage: Path) -> dict[str, Any]:
    """Phases of one launch from its trials' own start and end times in Tune's results."""
    results = _tune_results(storage)
    starts = [r["timestamp"] - r["time_total_s"] for r in results]
    ends = [r["timestamp"] for r in results]
    first, last = min(starts), max(ends)
    busy = run.busy_between(first, last)
    return {
        "trials": len(results),
        "wall_seconds": round(run.wall_seconds, 2),
        "before_first_trial_s": round(first - run.start, 2),
        "trials_phase_s": round(last - first, 2),
        "after_last_trial_s": round(run.end - last, 2),
        "trials_phase_per_trial_ms": round(1000 * (last - first) / len(results), 1),
        "peak_driver_rss_mb": None if run.peak_rss_mb is None else round(run.peak_rss_mb, 1),
        # every process's CPU over the trials phase (the machine's busy time: run alone)
        "trials_phase_cpu_per_trial_ms": None
        if busy is None
        else round(1000 * busy / len(results), 1),
        "trials_phase_busy_cores": None
        if busy is None or last <= first
        else round(busy / (last - first), 2),
    }


def run_way(way: str, trials: int, scratch: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One cold launch of ``way`` with ``trials`` trials in its own directory (``extra``:
    more Hydra overrides for the runner, e.g. ``ensemble.candidates=null``)."""
    tmp = scratch / f"{way}-{trials}"
    tmp.mkdir()
    overrides = experiment_overrides(scratch / "conf", trials)
    if way == "tune":
        plan_json = tmp / "plan.json"
        plan_json.write_text(json.dumps(plan(overrides, tmp)))
        cmd = [sys.executable, __file__, "--child", str(plan_json), str(tmp), str(trials)]
        return _timeline(launch(cmd, tmp, way), tmp / "tune")
    cmd = runner_command([*overrides, "runner.verbose=0", *extra], tmp)
    out = _timeline(launch(cmd, tmp, way), tmp / "tune")
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    ensemble = summary.get("ensemble") or {}
    out["ensemble_test_accuracy"] = ensemble.get("test_metric")
    out["members_with_weight"] = sum(w > 0 for w in (ensemble.get("weights") or {}).values())
    out["ensemble_pruned"] = ensemble.get("pruned")
    out["driver_reported"] = summary.get("driver")  # the runner's own memory record
    return out


def _num(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def plot(result: dict[str, Any], path: Path) -> None:
    """Wall time against trials, one line per way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for way, rows in result["ways"].items():
        ax.plot([r["trials"] for r in rows], [r["wall_seconds"] for r in rows], "o-", label=way)
    ax.set_xlabel("trials")
    ax.set_ylabel("wall time (s)")
    ax.set_title("one searched logistic regression on digits, 2 cores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def check(result: dict[str, Any]) -> dict[str, Any]:
    """The goals' ratios at the largest and smallest sizes run (None where a way is missing)."""
    ways = result["ways"]
    out: dict[str, Any] = {}
    if "runner" in ways:
        largest, smallest = ways["runner"][-1], ways["runner"][0]
        out["after_last_trial_s"] = largest["after_last_trial_s"]
        if largest["peak_driver_rss_mb"] and smallest["peak_driver_rss_mb"]:
            ratio = largest["peak_driver_rss_mb"] / smallest["peak_driver_rss_mb"]
            out["rss_largest/smallest"] = round(ratio, 3)
        if "tune" in ways:
            ratio = largest["wall_seconds"] / ways["tune"][-1]["wall_seconds"]
            out["wall_runner/tune"] = round(ratio, 3)
    out["met"] = {k: v <= GOALS[k] for k, v in out.items() if k in GOALS}
    return out


def main() -> None:
    """Run every way at every size and print the table, goals and where the plot went."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_tune(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,1000,2000")
    parser.add_argument("--ways", default="tune,runner")
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None)
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for the runner")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    ways = [w for w in args.ways.split(",") if w]
    if unknown := sorted(set(ways) - set(WAYS)):
        raise SystemExit(f"--ways: unknown {unknown}; allowed: {', '.join(WAYS)}")
    if not sizes or sizes[0] < 2:
        raise SystemExit(f"--sizes must be integers >= 2, got {args.sizes!r}")
    result: dict[str, Any] = {
        "machine": describe(),
        "sizes": sizes,
        "runner_overrides": args.overrides,
        "ways": {w: [] for w in ways},
    }
    print(f"machine: {result['machine']}")
    header = (
        f"{'way':<8}{'trials':>7}{'wall s':>9}{'before':>8}{'trials s':>10}{'after':>8}"
        f"{'ms/trial':>10}{'CPU ms':>8}{'cores':>7}{'RSS MB':>8}"
    )
    print(header)
    with tempfile.TemporaryDirectory(prefix="scale-") as scratch:
        for trials in sizes:
            for way in ways:
                started = time.time()
                row = run_way(way, trials, Path(scratch), tuple(args.overrides))
                row["measured_at"] = started
                result["ways"][way].append(row)
                print(
                    f"{way:<8}{row['trials']:>7}{row['wall_seconds']:>9.1f}"
                    f"{row['before_first_trial_s']:>8.1f}{row['trials_phase_s']:>10.1f}"
                    f"{row['after_last_trial_s']:>8.1f}{row['trials_phase_per_trial_ms']:>10.1f}"
                    f"{_num(row['trials_phase_cpu_per_trial_ms'], 8, 1)}"
                    f"{_num(row['trials_phase_busy_cores'], 7, 2)}"
                    f"{row['peak_driver_rss_mb'] or 0:>8.0f}"
                    + (
                        f"  ensemble test {row['ensemble_test_accuracy']:.4f}"
                        if row.get("ensemble_test_accuracy") is not None
                        else ""
                    ),
                    flush=True,
                )
    result["goals"] = GOALS
    result["checks"] = check(result)
    print(f"goals {GOALS}; measured {result['checks']}")
    if args.plot:
        plot(result, Path(args.plot))
        print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
