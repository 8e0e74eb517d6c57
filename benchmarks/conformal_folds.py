"""Conformal intervals of bagged members: does the coverage promised on out-of-fold rows hold
on new rows, which get the mean of the folds' models?

    python benchmarks/conformal_folds.py [--splits 20] [--rows 600] [--data ../shared/data]

On random subsets of California housing (``--rows`` rows each; 20% held out as test), four
scikit-learn members (ridge, HistGradientBoosting, k-NN, extra trees) are bagged over 5 folds
as ``runner.folds=5`` bags them; ``ensembles.conformal`` is calibrated on the uniform
ensemble's out-of-fold predictions with the members' out-of-fold spread, and the test
coverage is measured three ways: intervals scaled by the spread of the folds' mean (what the
runner did before), by the spread taken fold by fold (``conformal.spread`` of predictions by
fold, what it does now), and unscaled (plain absolute errors); then the same around the
members refitted on all pooled rows (``runner.refit=true``), whose served intervals take the
refits' own spread. Prints the mean coverage over the splits and its standard error at
targets 0.8, 0.9 and 0.95, and the mean spreads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from machine import describe
from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, train_test_split
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ensembles import conformal  # noqa: E402

MEMBERS = {
    "ridge": lambda: make_pipeline(StandardScaler(), Ridge()),
    "hgb": lambda: HistGradientBoostingRegressor(max_iter=100),
    "knn": lambda: make_pipeline(StandardScaler(), KNeighborsRegressor(15)),
    "extra_trees": lambda: ExtraTreesRegressor(50, min_samples_leaf=3, n_jobs=1, random_state=0),
}
TARGETS = (0.8, 0.9, 0.95)
FOLDS = 5


def housing(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's California housing features and target (in $100,000) from the StatLib file."""
    a = np.loadtxt(data / "california_housing" / "cal_housing.data", delimiter=",")
    rooms, bedrooms, population, households = a[:, 3], a[:, 4], a[:, 5], a[:, 6]
    X = np.c_[
        a[:, 7], a[:, 2], rooms / households, bedrooms / households,
        population, population / households, a[:, 1], a[:, 0],
    ]  # fmt: skip
    return X, a[:, 8] / 1e5


def one_split(X: np.ndarray, y: np.ndarray, rows: int, seed: int) -> dict[str, np.ndarray]:
    """Bag every member on a random subset; the coverage of each way at each target."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(y), rows, replace=False)
    X_pool, X_test, y_pool, y_test = train_test_split(
        X[idx], y[idx], test_size=0.2, random_state=seed
    )
    oof = np.zeros((len(MEMBERS), len(y_pool)))
    by_fold = np.zeros((FOLDS, len(MEMBERS), len(y_test)))
    refits = np.zeros((len(MEMBERS), len(y_test)))
    splits = list(KFold(FOLDS, shuffle=True, random_state=seed).split(X_pool))
    for m, make in enumerate(MEMBERS.values()):
        for k, (fit_rows, held) in enumerate(splits):
            model = make().fit(X_pool[fit_rows], y_pool[fit_rows])
            oof[m, held] = model.predict(X_pool[held])
            by_fold[k, m] = model.predict(X_test)
        refits[m] = make().fit(X_pool, y_pool).predict(X_test)
    w = np.full(len(MEMBERS), 1 / len(MEMBERS))
    mean = by_fold.mean(axis=0)
    cal_pred, test_pred = w @ oof, w @ mean
    ways = {
        "spread of the folds' mean": conformal.spread(mean, w),
        "spread fold by fold": conformal.spread(by_fold, w),
        "unscaled": None,
    }
    refit_ways = {
        "refits, their spread": conformal.spread(refits, w),
        "refits, spread fold by fold": ways["spread fold by fold"],
        "refits, unscaled": None,
    }
    out: dict[str, np.ndarray] = {}
    for way, s_test in {**ways, **refit_ways}.items():
        s_cal = None if s_test is None else conformal.spread(oof, w)
        center = w @ refits if way in refit_ways else test_pred
        out[way] = np.array(
            [
                conformal.evaluate_on(
                    conformal.calibrate(t, cal_pred, y_pool, s_cal), center, y_test, s_test
                )["coverage"]
                for t in TARGETS
            ]
        )
    out["spreads"] = np.array(
        [conformal.spread(oof, w).mean(), ways["spread of the folds' mean"].mean()]
        + [ways["spread fold by fold"].mean(), refit_ways["refits, their spread"].mean()]
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    print(describe())
    X, y = housing(args.data)
    found: dict[str, list[np.ndarray]] = {}
    for seed in range(args.splits):
        for way, values in one_split(X, y, args.rows, seed).items():
            found.setdefault(way, []).append(values)
        print(f"split {seed + 1}/{args.splits} done", flush=True)
    print(f"\nmean test coverage over {args.splits} splits of {args.rows} rows (standard error)")
    print("| way | " + " | ".join(f"target {t}" for t in TARGETS) + " |")
    print("|---|" + "---|" * len(TARGETS))
    for way in (w for w in found if w != "spreads"):  # in the order one_split names them
        v = np.array(found[way])
        cells = [
            f"{m:.4f} ({e:.4f})" for m, e in zip(v.mean(0), v.std(0) / np.sqrt(len(v)), strict=True)
        ]
        print(f"| {way} | " + " | ".join(cells) + " |")
    oof_s, mean_s, fold_s, refit_s = np.mean(found["spreads"], axis=0)
    print(
        f"\nmean spread: out-of-fold {oof_s:.4f}, of the folds' mean {mean_s:.4f} "
        f"({mean_s / oof_s:.3f} of out-of-fold), fold by fold {fold_s:.4f}, of the refits "
        f"{refit_s:.4f} ({refit_s / oof_s:.3f})"
    )


if __name__ == "__main__":
    main()
