"""Time the README's quickstart command end to end and report the ensemble's test accuracy.

    python benchmarks/quickstart.py [--repeats 3] [--json results.json] [--keep DIR]
                                    [-- extra overrides]

Each repeat runs `python -m runner +experiment=quickstart` in a fresh temporary directory
(fresh MLflow store, fresh Ray), exactly as a new user would, and reads its summary.json.
With --keep (one repeat) the run happens in DIR, left there to look into.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from cold_run import cold_run
from machine import describe


def run_once(extra: list[str], keep: Path | None = None) -> dict:
    """One cold run of the quickstart command; wall time includes Python, Ray and TF start-up."""
    wall, summary = cold_run(["+experiment=quickstart", *extra], "quickstart", keep)
    tests = {m["name"]: m["test_metric"] for m in summary["members"]}
    best = summary["ensemble"]["best_member"]  # chosen on validation, as the ensemble is
    return {
        "wall_seconds": round(wall, 2),
        "ensemble_test_accuracy": summary["ensemble"]["test_metric"],
        "best_member": best,
        "best_member_test_accuracy": tests[best],
        "best_test_accuracy_in_hindsight": max(tests.values()),
        "members": tests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="run in this new directory and keep it")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    if args.keep and args.repeats != 1:
        parser.error(f"--keep needs --repeats 1 (one directory per run), got {args.repeats}")
    runs = [run_once(args.overrides, args.keep) for _ in range(args.repeats)]
    result = {
        "machine": describe(),
        "runs": runs,
        "median_wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
        "min_ensemble_test_accuracy": min(r["ensemble_test_accuracy"] for r in runs),
    }
    for i, r in enumerate(runs, 1):
        print(
            f"run {i}: {r['wall_seconds']:.1f} s wall, ensemble test accuracy "
            f"{r['ensemble_test_accuracy']:.4f} (best member on validation, {r['best_member']}: "
            f"{r['best_member_test_accuracy']:.4f}; best on test in hindsight "
            f"{r['best_test_accuracy_in_hindsight']:.4f})"
        )
    print(f"machine: {result['machine']}; median wall {result['median_wall_seconds']:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
