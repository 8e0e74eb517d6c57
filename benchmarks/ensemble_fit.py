"""Fit time of each ensemble method as members x rows x classes grow.

    python benchmarks/ensemble_fit.py [--members 10 50 200] [--rows 10000] [--classes 10]
                                      [--methods mean weighted greedy stacking] [--json out.json]

Predictions are synthetic softmax outputs of members of varying skill (seeded), the shape the
runner hands to the ensemble stage. Each cell is the median of --repeats fits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from machine import describe

from ensembles import METHODS, make


def predictions(members: int, rows: int, classes: int, seed: int = 0):
    """(members, rows, classes) probabilities and labels; member skill varies from weak to good."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, rows)
    skill = np.linspace(0.5, 3.0, members)[:, None, None]
    logits = rng.normal(size=(members, rows, classes)) + skill * np.eye(classes)[y][None]
    P = np.exp(logits - logits.max(axis=2, keepdims=True))
    return P / P.sum(axis=2, keepdims=True), y


def time_fit(method: str, P: np.ndarray, y: np.ndarray, repeats: int) -> float:
    """Median seconds of ``repeats`` fits."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        make(method, random_state=0).fit(P, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS), choices=sorted(METHODS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    print(f"{'method':<10}{'members':>8}{'rows':>8}{'classes':>8}{'fit s':>10}")
    for members in args.members:
        P, y = predictions(members, args.rows, args.classes)
        for method in args.methods:
            seconds = time_fit(method, P, y, args.repeats)
            results.append(
                {
                    "method": method,
                    "members": members,
                    "rows": args.rows,
                    "classes": args.classes,
                    "fit_seconds": round(seconds, 4),
                }
            )
            print(
                f"{method:<10}{members:>8}{args.rows:>8}{args.classes:>8}{seconds:>10.3f}",
                flush=True,
            )
    machine = describe()
    print(f"machine: {machine}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
