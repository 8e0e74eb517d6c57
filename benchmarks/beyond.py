"""What no peer builds, measured: conformal coverage and latency budgets of the ensemble.

    python benchmarks/beyond.py [--only digits housing] [--splits 0 1 2]
                                [--data ../shared/data] [--json out.json] [-- overrides]
    python benchmarks/beyond.py --search [--only digits penguins housing] [--trials 32]

For each dataset and data split seed, the experiment (`quickstart` on digits, `housing_zoo`
on California housing) runs cold with `ensemble.coverage=0.9`; its members' validation and
test predictions are then read back from MLflow and the ensemble stage (the same code the
sweep ran) is calibrated at 0.8, 0.9 and 0.95. Reported per level: the empirical test
coverage (mean over splits, and the worst split) against the target (goal: within 2 points),
and the mean interval width (regression) or prediction set size (classification), beside
the same split-conformal method on the best single member's own predictions (plain
absolute-error intervals; sets from its probabilities).

Latency budget: on the same members, the sweep's ensemble method without a budget, then with
`max_latency_ms` a third of what its served members take (their prediction times, recorded
by the sweep on the test rows). Reported: both ensembles' test metric and gain over the best
member (by validation), and the share of the gain the budget keeps (goal: at least 80%);
beside it, the affordable subset that scores best on test (chosen in hindsight: the most any
selection within the budget could have kept on that split).

Distillation: each sweep also runs with `ensemble.distill` (an MLP on digits, trained on the
ensemble's probabilities; HistGradientBoosting on housing, on its predicted values). Reported:
the student's test metric, prediction time and size beside the ensemble's and the best
member's (goal: within half the gap between best member and ensemble, 5x faster).

Ensemble-aware search (`--search`): on each dataset and seed, the experiment's members with
its MLP searched by Optuna (`--trials` trials over width, depth, dropout and learning rate,
no early stopping of trials), once scored by each trial's own validation loss and once with
`search.objective=ensemble`; reported: the final ensemble's test metric per seed, mean and
spread (goal: ensemble-aware better on average on every dataset).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from cold_run import cold_run, store_uri
from machine import describe

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ensembles import conformal  # noqa: E402
from ensembles.stage import MemberPredictions  # noqa: E402
from ensembles.stage import run as ensemble_stage  # noqa: E402

LEVELS = (0.8, 0.9, 0.95)
DATASETS = {
    "digits": {"experiment": "quickstart", "data": None, "student": "mlp"},
    "housing": {
        "experiment": "housing_zoo",
        "data": "california_housing/cal_housing.data",
        "student": "hgb",
    },
}


def members_of(folder: Path, summary: dict[str, Any]) -> tuple[list, np.ndarray, np.ndarray]:
    """The finished members' predictions of one sweep, read back from its MLflow store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri(folder, summary))
    members, labels = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for m in summary["members"]:
            if m["status"] != "FINISHED":
                continue
            path = client.download_artifacts(m["run_id"], "predictions.npz", f"{tmp}/{m['name']}")
            with np.load(path) as npz:
                cost = m.get("predict_ms_per_1000")
                members.append(MemberPredictions(m["name"], npz["val"], npz["test"], cost=cost))
                labels = (npz["y_val"], npz["y_test"])
    return members, labels[0], labels[1]


def single_member(member: Any, y_val: np.ndarray, y_test: np.ndarray, level: float) -> dict:
    """Split conformal on one member's own validation predictions, scored on test."""
    fitted = conformal.calibrate(level, member.val, y_val)
    return conformal.evaluate_on(fitted, member.test, y_test)


def budget(
    method: str, params: dict, members: list, y_val: np.ndarray, y_test: np.ndarray
) -> dict[str, Any]:
    """The method on all members and within a third of their served prediction time."""
    full = ensemble_stage(method, params, members, y_val, y_test, n_boot=10)
    full_ms = float(sum(members[i].cost for i in full.estimator.used_members()))
    limit = full_ms / 3

    def scores(report: Any, ms: float) -> dict[str, Any]:
        return {
            "members": [report.names[i] for i in report.estimator.used_members()],
            "ms_per_1000": ms,
            "test": report.test_scores[report.metric],
            "gain": report.test_gain["estimate"],
        }

    out = {"metric": full.metric, "full": scores(full, full_ms), "max_latency_ms": limit}
    best = next(m for m in members if m.name == full.best_member)
    out["best_member"] = {
        "name": best.name,
        "ms_per_1000": best.cost,
        "test": full.best_member_test_scores[full.metric],
    }
    try:
        within = ensemble_stage(
            method, params, members, y_val, y_test, n_boot=10, max_latency_ms=limit
        )
    except ValueError as err:  # no member alone fits the budget
        out["budgeted"] = {"error": str(err)}
        return out
    out["budgeted"] = scores(within, within.budget["cost"])
    gain = out["full"]["gain"]
    out["kept"] = out["budgeted"]["gain"] / gain if gain > 0 else None
    out["hindsight"] = hindsight(method, params, members, y_val, y_test, limit, out)
    return out


def hindsight(
    method: str,
    params: dict,
    members: list,
    y_val: np.ndarray,
    y_test: np.ndarray,
    limit: float,
    out: dict[str, Any],
) -> dict[str, Any] | None:
    """The affordable subset whose ensemble (the method fitted on its validation predictions)
    scores best on test: what a selection that knew the test rows would keep. Not a method,
    a yardstick for the budgeted selection; None beyond 12 members (4096 subsets)."""
    import itertools

    from ensembles import make
    from ensembles.metrics import evaluate, greater_is_better

    if len(members) > 12:
        return None
    metric, sign = out["metric"], 1.0 if greater_is_better(out["metric"]) else -1.0
    best: dict[str, Any] | None = None
    for k in range(1, len(members) + 1):
        for subset in itertools.combinations(range(len(members)), k):
            ms = float(sum(members[i].cost for i in subset))
            if ms > limit:
                continue
            P_val = np.stack([members[i].val for i in subset])
            P_test = np.stack([members[i].test for i in subset])
            fitted = make(method, **params).fit(P_val, y_val)
            test = evaluate(y_test, fitted.predict(P_test))[metric]
            if best is None or sign * (test - best["test"]) > 0:
                names = [members[i].name for i in subset]
                best = {"members": names, "ms_per_1000": ms, "test": test}
    if best is not None:
        best["gain"] = sign * (best["test"] - out["best_member"]["test"])
        full_gain = out["full"]["gain"]
        best["kept"] = best["gain"] / full_gain if full_gain > 0 else None
    return best


def run(name: str, data_root: Path, split: int, overrides: list[str]) -> dict[str, Any]:
    """One cold sweep on one data split, then the ensemble stage at every level."""
    bench = DATASETS[name]
    args = [
        f"+experiment={bench['experiment']}",
        "ensemble.coverage=0.9",
        f"ensemble.distill={bench['student']}",
        f"data.seed={split}",
        *([f"data.path={data_root / bench['data']}"] if bench["data"] else []),
        *overrides,
    ]
    with tempfile.TemporaryDirectory(prefix=f"beyond-{name}-") as tmp:
        folder = Path(tmp) / "run"
        wall, summary = cold_run(args, f"beyond-{name}", keep=folder)
        members, y_val, y_test = members_of(folder, summary)
    ens = summary["ensemble"]
    out: dict[str, Any] = {"split": split, "wall_seconds": round(wall, 1), "levels": {}}
    for level in LEVELS:
        report = ensemble_stage(
            ens["method"], ens["params"], members, y_val, y_test, n_boot=10, coverage=level
        )
        best = next(m for m in members if m.name == report.best_member)
        out["levels"][str(level)] = {
            "ensemble": report.conformal["test"],
            "best_member": {"name": best.name, **single_member(best, y_val, y_test, level)},
            "calibration_rows": report.conformal["n_calibration"],
            "test_rows": len(y_test),
        }
    out["budget"] = budget(ens["method"], ens["params"], members, y_val, y_test)
    out["student"] = student(summary)
    return out


def student(summary: dict[str, Any]) -> dict[str, Any]:
    """The distilled student beside the served ensemble and its best member: test metric,
    prediction time per 1000 rows and size, and the share of the ensemble's gain it keeps."""
    st, ens = summary["student"], summary["ensemble"]
    best = next(m for m in summary["members"] if m["name"] == ens["best_member"])

    def facts(row: dict[str, Any]) -> dict[str, Any]:
        return {k: row.get(k) for k in ("test_metric", "predict_ms_per_1000", "model_bytes")}

    out = {
        "name": st["name"],
        "student": facts(st),
        "ensemble": facts(ens),
        "best_member": {"name": best["name"], **facts(best)},
    }
    from ensembles.metrics import greater_is_better

    sign = 1.0 if greater_is_better(summary["metric"]) else -1.0
    gain = sign * (ens["test_metric"] - best["test_metric"])  # none to keep unless > 0
    out["kept"] = sign * (st["test_metric"] - best["test_metric"]) / gain if gain > 0 else None
    out["speedup"] = ens["predict_ms_per_1000"] / st["predict_ms_per_1000"]
    return out


def table(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown rows: per dataset and level, coverage and size, ensemble and best member."""
    lines = [
        "| dataset | target | ensemble test coverage (mean, worst split) "
        "| ensemble width / set size | best member coverage | best member width / set size |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        for level in LEVELS:
            rows = [r["levels"][str(level)] for r in runs]
            cov = [r["ensemble"]["coverage"] for r in rows]
            size_key = "mean_width" if "mean_width" in rows[0]["ensemble"] else "mean_set_size"
            size = np.mean([r["ensemble"][size_key] for r in rows])
            single = np.mean([r["best_member"]["coverage"] for r in rows])
            single_size = np.mean([r["best_member"][size_key] for r in rows])
            worst = max(cov, key=lambda c: abs(c - level))
            lines.append(
                f"| {name} | {level:.2f} | {np.mean(cov):.3f} ({worst:.3f}) | {size:.3f} "
                f"| {single:.3f} | {single_size:.3f} |"
            )
    return lines


def budget_table(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown rows: per dataset and split, the full and the budgeted ensemble."""
    lines = [
        "| dataset | split | metric | best member (ms) | all members: test (ms) "
        "| budget a third: test (ms, members) | gain kept | best affordable in hindsight |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        for r in runs:
            b = r["budget"]
            best, full, within = b["best_member"], b["full"], b["budgeted"]
            if "error" in within:
                cell, kept = within["error"], "-"
            else:
                cell = (
                    f"{within['test']:.4f} ({within['ms_per_1000']:.0f} ms, "
                    f"{', '.join(within['members'])})"
                )
                kept = "-" if b["kept"] is None else f"{100 * b['kept']:.0f}%"
            seen = b.get("hindsight")
            hind = "-"
            if seen:
                share = "-" if seen["kept"] is None else f"{100 * seen['kept']:.0f}%"
                hind = f"{seen['test']:.4f} ({', '.join(seen['members'])}): {share}"
            lines.append(
                f"| {name} | {r['split']} | {b['metric']} | {best['name']} {best['test']:.4f} "
                f"({best['ms_per_1000']:.0f}) | {full['test']:.4f} ({full['ms_per_1000']:.0f}, "
                f"{len(full['members'])} members) | {cell} | {kept} | {hind} |"
            )
    return lines


def student_table(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown rows: per dataset and split, student, ensemble and best member."""
    lines = [
        "| dataset | split | student: test (ms, MB) | ensemble: test (ms, MB) "
        "| best member: test (ms, MB) | gain kept | faster than the ensemble |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(row: dict[str, Any]) -> str:
        size = row["model_bytes"] / 1e6 if row["model_bytes"] else float("nan")
        return f"{row['test_metric']:.4f} ({row['predict_ms_per_1000']:.1f}, {size:.2f})"

    for name, runs in results.items():
        for r in runs:
            s = r["student"]
            kept = "-" if s["kept"] is None else f"{100 * s['kept']:.0f}%"
            lines.append(
                f"| {name} | {r['split']} | {s['name']} {cell(s['student'])} "
                f"| {cell(s['ensemble'])} | {s['best_member']['name']} {cell(s['best_member'])} "
                f"| {kept} | {s['speedup']:.1f}x |"
            )
    return lines


SEARCH = {
    "digits": ["+experiment=quickstart"],
    "penguins": [
        "+experiment=tabular",
        "data.path={data}/penguins/penguins.csv",
        "data.target=species",
    ],
    "housing": [
        "+experiment=housing_zoo",
        "data.path={data}/california_housing/cal_housing.data",
    ],
}
SPACE = [
    "++members.mlp.hparams.width={choice: [32, 64, 128, 256]}",
    "++members.mlp.hparams.depth={randint: [1, 4]}",
    "++members.mlp.hparams.dropout={uniform: [0.0, 0.5]}",
    "++members.mlp.training.learning_rate={loguniform: [0.0001, 0.01]}",
]


def search_run(name: str, data_root: Path, seed: int, objective: str, trials: int) -> dict:
    """One cold sweep: the dataset's members with the MLP searched by Optuna."""
    args = [
        *(a.format(data=data_root) for a in SEARCH[name]),
        *SPACE,
        "search=optuna",
        "search.scheduler=null",
        f"search.num_samples={trials}",
        f"search.seed={seed}",
        f"search.objective={objective}",
        f"data.seed={seed}",
        f"runner.seed={seed}",
    ]
    wall, summary = cold_run(args, f"search-{name}-{objective}")
    ens = summary["ensemble"]
    return {
        "seed": seed,
        "objective": objective,
        "wall_seconds": round(wall, 1),
        "metric": summary["metric"],
        "test": ens["test_metric"],
        "members_with_weight": sum(w > 0 for w in ens["weights"].values()),
    }


def search_table(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown rows: per dataset, each objective's final ensemble test metric over seeds."""
    lines = [
        "| dataset | metric | objective | test per seed | mean (std) | members with weight |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        for objective in ("member", "ensemble"):
            mine = [r for r in runs if r["objective"] == objective]
            scores = np.array([r["test"] for r in mine])
            lines.append(
                f"| {name} | {mine[0]['metric']} | {objective} "
                f"| {', '.join(f'{v:.4f}' for v in scores)} "
                f"| {scores.mean():.4f} ({scores.std(ddof=1) if len(scores) > 1 else 0:.4f}) "
                f"| {np.mean([r['members_with_weight'] for r in mine]):.1f} |"
            )
    return lines


def search_main(args: argparse.Namespace) -> None:
    """``--search``: ensemble-aware against plain search, same trials, same seeds."""
    results: dict[str, list[dict[str, Any]]] = {}
    for name in args.only:
        for seed in args.splits:
            for objective in ("member", "ensemble"):
                r = search_run(name, args.data.resolve(), seed, objective, args.trials)
                results.setdefault(name, []).append(r)
                print(f"{name} seed {seed}: {json.dumps(r)}", flush=True)
    machine = describe()
    print("\n".join(["", *search_table(results), "", f"machine: {machine}"]))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "search": results}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted({*DATASETS, *SEARCH}))
    parser.add_argument("--search", action="store_true", help="ensemble-aware search instead")
    parser.add_argument("--trials", type=int, default=32, help="--search: trials per search")
    parser.add_argument("--splits", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--json", type=Path)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    if args.search:
        args.only = args.only or list(SEARCH)
        return search_main(args)
    args.only = args.only or list(DATASETS)
    if set(args.only) - set(DATASETS):
        parser.error(f"--only without --search takes {', '.join(DATASETS)}")
    results: dict[str, list[dict[str, Any]]] = {}
    for name in args.only:
        for split in args.splits:
            r = run(name, args.data.resolve(), split, args.overrides)
            results.setdefault(name, []).append(r)
            print(f"{name} split {split}: {json.dumps(r['levels'])}", flush=True)
            print(f"{name} split {split} budget: {json.dumps(r['budget'])}", flush=True)
            print(f"{name} split {split} student: {json.dumps(r['student'])}", flush=True)
    machine = describe()
    print(
        "\n".join(
            [
                "",
                *table(results),
                "",
                *budget_table(results),
                "",
                *student_table(results),
                "",
                f"machine: {machine}",
            ]
        )
    )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
