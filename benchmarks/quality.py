"""Ensemble quality on the dataset benchmarks, against the best member and published anchors.

    python benchmarks/quality.py [--only digits housing fashion] [--data ../shared/data]
                                 [--json out.json] [--overrides-file FILE]
                                 [-- extra Hydra overrides]

``benchmarks/fashion/*.txt`` hold the Fashion-MNIST zoos the README reports, one override per
line: ``python benchmarks/quality.py --only fashion --overrides-file benchmarks/fashion/X.txt``.

Each benchmark runs `python -m runner +experiment=NAME` in a fresh temporary directory (fresh
MLflow store, fresh Ray) and reads summary.json. Anchors are published single-model numbers
on the same datasets, not reproduced here: Fashion-MNIST test accuracy of scikit-learn's SVC
0.897 and of small CNNs 0.92-0.93 (the dataset's benchmark page); California housing test RMSE
of HistGradientBoosting about 0.465 with defaults and 0.448 tuned (in 100k$).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cold_run import cold_run
from machine import describe

ROOT = Path(__file__).resolve().parent.parent

BENCHMARKS = {
    "digits": {"experiment": "quickstart", "data": None, "anchors": {}},
    "housing": {
        "experiment": "housing_zoo",
        "data": "california_housing/cal_housing.data",
        "anchors": {"HistGradientBoosting default": 0.465, "HistGradientBoosting tuned": 0.448},
    },
    "fashion": {
        "experiment": "fashion_zoo",
        "data": "fashion-mnist",
        "anchors": {"scikit-learn SVC": 0.897, "small CNN (low end)": 0.92},
    },
}


def run(name: str, data_root: Path, overrides: list[str]) -> dict:
    """One cold run of the benchmark's experiment; its summary plus wall and CPU time."""
    bench = BENCHMARKS[name]
    args = [f"+experiment={bench['experiment']}", *overrides]
    if bench["data"]:
        args.append(f"data.path={data_root / bench['data']}")
    wall, summary = cold_run(args, f"quality-{name}")
    ens = summary["ensemble"]
    finished = [m for m in summary["members"] if m["status"] == "FINISHED"]
    return {
        "experiment": bench["experiment"],
        "metric": summary["metric"],
        "wall_seconds": round(wall, 1),
        # the members' trial times summed, and the CPU their workers spent on them (every
        # thread): on a busy machine the first grows, the second much less
        "member_seconds": round(sum(m["train_seconds"] or 0 for m in finished), 1),
        "member_cpu_seconds": round(sum(m.get("train_cpu_seconds") or 0 for m in finished), 1),
        "ensemble_method": ens["method"],
        "ensemble_test": ens["test_metric"],
        "best_member": ens["best_member"],
        "best_member_test": ens["best_member_test_metric"],
        "test_gain_over_best_member": ens["test_gain_over_best_member"],
        "beats_best_member": ens["beats_best_member"],
        "members_test": {m["name"]: round(m["test_metric"], 4) for m in finished},
        "anchors": bench["anchors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=sorted(BENCHMARKS))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--overrides-file",
        type=Path,
        help="more Hydra overrides for every run, one per line (e.g. benchmarks/fashion/*.txt)",
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    if args.overrides_file is not None:
        lines = args.overrides_file.read_text().splitlines()
        args.overrides = [x.strip() for x in lines if x.strip()] + args.overrides
    results = {}
    for name in args.only:
        r = results[name] = run(name, args.data.resolve(), args.overrides)
        gain = r["test_gain_over_best_member"]
        print(
            f"{name}: ensemble ({r['ensemble_method']}) test {r['metric']} "
            f"{r['ensemble_test']:.4f} vs best member {r['best_member']} "
            f"{r['best_member_test']:.4f} (gain {gain['estimate']:+.4f}, 95% CI "
            f"{gain['ci_low']:+.4f}..{gain['ci_high']:+.4f}); wall {r['wall_seconds']:.0f} s, "
            f"members {r['member_seconds']:.0f} s, their CPU {r['member_cpu_seconds']:.0f} s",
            flush=True,
        )
        for anchor, value in r["anchors"].items():
            print(f"    anchor {anchor}: {value}")
    machine = describe()
    print(f"machine: {machine}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
