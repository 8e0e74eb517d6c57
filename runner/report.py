"""What the user reads at the end: the leaderboard table and ``summary.json``."""

from __future__ import annotations

import html
import json
import math
from numbers import Real
from pathlib import Path
from typing import Any

from ensembles.conformal import least_calibration_rows
from ensembles.metrics import greater_is_better


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rank(member: dict[str, Any], better: bool) -> tuple[float, float]:
    """Best first by the validation metric, a tie to the better validation log loss or RMSE:
    the order ``ensembles.honest.best_member`` picks the best member in (every member of an
    imbalanced table scores the same accuracy)."""
    scores = member.get("val_scores") or {}
    loss = scores.get("log_loss", scores.get("rmse", 0.0))
    return (-member["val_metric"] if better else member["val_metric"], loss)


def _table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: the ensemble, then members best-first by validation score."""
    metric = summary["metric"]
    better = greater_is_better(metric)
    ens = summary.get("ensemble")
    weights = ens["weights"] if ens else {}
    finished = [m for m in summary["members"] if m["status"] == "FINISHED"]
    others = [m for m in summary["members"] if m["status"] != "FINISHED"]
    finished.sort(key=lambda m: _rank(m, better))
    rows = []
    if ens:
        rows.append(
            [
                f"ensemble ({ens['method']})",
                "-",
                "FINISHED",
                _fmt(ens["val_metric"]),
                _fmt(ens["test_metric"]),
                "1.000",
                "-",
            ]
        )
        if ens.get("refit"):  # the same weights over members refitted on all rows: served
            refit = _fmt(ens["refit"]["test_metric"])
            rows.append(["ensemble, refit (served)", "-", "FINISHED", "-", refit, "1.000", "-"])
    for m in finished + others:
        rows.append(
            [
                m["name"],
                m["model"],
                m["status"],
                _fmt(m.get("val_metric")),
                _fmt(m.get("test_metric")),
                _fmt(weights.get(m["name"]), 3),
                _fmt(m.get("train_seconds"), 1),
            ]
        )
    header = ["member", "model", "status", f"val {metric}", f"test {metric}", "weight", "train s"]
    return header, rows


def _trained(cut: dict[str, int]) -> str:
    """What a member cut short trained: "3 epoch(s)", a booster's "120 round(s)" or a
    forest's "45 tree(s)"."""
    for unit in ("rounds", "trees"):
        if f"{unit}_run" in cut:
            return f"{cut[f'{unit}_run']} {unit[:-1]}(s)"
    return f"{cut['epochs_run']} epoch(s)"


def leaderboard(summary: dict[str, Any]) -> str:
    """A plain-text table: the ensemble, then members best-first by validation score."""
    metric = summary["metric"]
    ens = summary.get("ensemble")
    header, rows = _table(summary)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join
    out = [line(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append(line("-" * w for w in widths))
    out += [line(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    skipped = [m for m in summary["members"] if m["status"] == "SKIPPED"]
    bags = {
        m["name"]: f"{cut['missing']} of {cut['folds']} folds did not finish"
        for m in skipped
        if (cut := m.get("folds_missing"))
    }
    whole = [m["name"] for m in skipped if m["name"] not in bags]
    whole += [  # refits on all rows that could not start
        f"{m['name']}/refit"
        for m in summary["members"]
        if (m.get("refit") or {}).get("status") == "SKIPPED"
    ]
    if skipped or whole:
        out.append("")
    if whole:
        out += [f"skipped (runner.time_limit passed before they started): {', '.join(whole)}"]
    if bags:
        out += [
            "left out (runner.time_limit passed before some of their folds started): "
            + ", ".join(f"{name} ({why})" for name, why in bags.items())
        ]
    cut = [
        f"{m['name']} ({_trained(m['cut_short'])})"
        for m in summary["members"]
        if m.get("cut_short")
    ]
    if cut:
        out += [
            "cut short by runner.time_limit, kept with what they had trained: " + ", ".join(cut)
        ]
    cut_refits = [
        f"{m['name']}/refit ({_trained(refit['cut_short'])})"
        for m in summary["members"]
        if (refit := m.get("refit") or {}).get("cut_short")
    ]
    if cut_refits:  # a refit cut short is not served: its bag, trained whole, is
        out += [
            "cut short by runner.time_limit, not served (their bags are): " + ", ".join(cut_refits)
        ]
    worse = [m for m in summary["members"] if m.get("worse_than_constant")]
    if worse:
        ((key, loss),) = summary["constant_val"].items()
        what = "class shares" if key == "log_loss" else "mean"
        listed = ", ".join(f"{m['name']} ({_fmt(m['val_scores'][key])})" for m in worse)
        out += [
            "",
            f"worse on validation than predicting the training rows' {what} ({key} "
            f"{_fmt(loss)}), diverged or stuck: {listed}",
        ]
    if ens and "cross_fitted" in ens:
        out += ["", *honest_lines(ens, metric)]
    if ens and ens.get("pruned"):
        out.append(pruned_line(ens["pruned"]))
    if ens and ens.get("calibration"):
        out.append(calibration_line(ens["calibration"]))
    if ens and ens.get("conformal"):
        out.append(conformal_line(ens["conformal"], refit_conformal_figures(ens.get("refit"))))
    if ens and ens.get("refit"):
        out.append(refit_line(ens, summary["members"], metric))
    elif ens and ens.get("refit_missing"):
        out.append(
            "refit on all rows: no served member's refit finished whole (skipped or cut short "
            "by runner.time_limit, or failed); serving the folds' mean for "
            + ", ".join(ens["refit_missing"])
        )
    if ens and ens.get("predict_ms_per_1000") is not None:
        out.append(latency_line(ens, summary["members"]))
    if ens and ens.get("budget"):
        out.append(budget_line(ens, metric))
    if ens and summary.get("student"):
        out.append(student_line(summary["student"], ens, summary["members"], metric))
    if ens and ens.get("champion"):
        out.append(champion_line(ens["champion"]))
    for stage, rows in (summary.get("stages") or {}).items():
        out.append("")
        out.append(f"earlier stage {stage!r} (its own data; not ensembled):")
        for m in rows:
            scores = (
                f"val {_fmt(m.get('val_metric'))}  test {_fmt(m.get('test_metric'))}"
                if m["status"] == "FINISHED"
                else m["status"]
            )
            out.append(f"  {m['name']} ({m['model']}): {scores}")
    return "\n".join(line.rstrip() for line in out)


def pruned_line(pruned: dict[str, Any], setting: str = "ensemble.candidates") -> str:
    """What library pruning left out of a large sweep's ensemble, in words (``setting``: the
    option that changes it where the line is printed)."""
    return (
        f"ensembled the {pruned['kept']} best of {pruned['of']} members on validation "
        f"({pruned['rule']}; {setting}=null ensembles all); the others have no weight"
    )


def honest_lines(ens: dict[str, Any], metric: str) -> list[str]:
    """The numbers that say whether the ensemble is worth it, in words."""
    cf, gain = ens["cross_fitted"], ens["test_gain_over_best_member"]
    pct = round(100 * gain["level"])
    if not ens["beats_best_member"]:
        verdict = "does NOT beat its best member on test"
    elif gain["ci_low"] > 0:
        verdict = "beats its best member on test, and the interval excludes 0"
    else:
        verdict = "scores above its best member on test, but the interval includes 0"
    return [
        f"cross-fitted on val ({cf['folds']} folds): ensemble {cf['ensemble'][metric]:.4f}, "
        f"best single member {cf['best_member'][metric]:.4f}, gain {_signed(cf['gain'])}",
        f"test gain over {ens['best_member']} (best on val): {_signed(gain['estimate'])} "
        f"[{pct}% CI {_signed(gain['ci_low'])}, {_signed(gain['ci_high'])}]: the ensemble "
        f"{verdict}",
    ]


def _signed(value: float) -> str:
    """A gain with its sign, to 4 places: +0.0000 for a gain that rounds to 0 (not -0.0000)."""
    return f"{round(value, 4) + 0.0:+.4f}"


def latency_line(ens: dict[str, Any], members: list[dict[str, Any]]) -> str:
    """How long the served ensemble's members take to predict, against its best member."""
    best = next((m for m in members if m["name"] == ens["best_member"]), {})
    refit = (best.get("refit") or {}) if ens.get("refit") else {}
    alone = refit.get("predict_ms_per_1000") or best.get("predict_ms_per_1000")
    than = f" ({ens['best_member']} alone: {alone:.1f} ms)" if alone is not None else ""
    return (
        f"prediction time: the served members take {ens['predict_ms_per_1000']:.1f} ms per "
        f"1000 rows{than}"
    )


def _size(n: float | None) -> str:
    return "size unknown" if n is None else f"{n / 1e6:.2f} MB"


def student_line(
    st: dict[str, Any], ens: dict[str, Any], members: list[dict[str, Any]], metric: str
) -> str:
    """The distilled student beside the served ensemble and its best member: test score,
    share of the ensemble's gain kept, prediction time and size."""
    head = (
        f"student {st['name'].removesuffix('/student')} ({st['model']}) distilled from the ensemble"
    )
    if st["status"] != "FINISHED":
        return f"{head}: {st['status']} {st.get('error') or ''}".rstrip()
    best = next((m for m in members if m["name"] == ens["best_member"]), {})
    served = (ens.get("refit") or {}).get("test_metric", ens["test_metric"])
    s, b = st["test_metric"], best.get("test_metric")
    text = f"{head}: test {metric} {s:.4f} (ensemble {served:.4f}"
    if b is not None:
        text += f", {ens['best_member']} {b:.4f}"
        gain = (served - b) if greater_is_better(metric) else (b - served)
        share = (s - b) / (served - b) if gain > 0 else None
        if share is not None and 0 <= share <= 1:  # a share of no gain, or past it, says nothing
            text += f"; keeps {100 * share:.0f}% of the ensemble's gain"
        elif share is not None and share > 1:
            text += "; better than the ensemble"
        elif share is not None:
            text += f"; worse than {ens['best_member']}"
    text += ")"
    ms, ens_ms = st.get("predict_ms_per_1000"), ens.get("predict_ms_per_1000")
    if ms and ens_ms:
        pace = f"{ens_ms / ms:.1f}x faster" if ens_ms >= ms else f"{ms / ens_ms:.1f}x slower"
        text += f"; {ms:.1f} ms per 1000 rows (ensemble {ens_ms:.1f}, {pace})"
    text += f"; {_size(st.get('model_bytes'))} (ensemble {_size(ens.get('model_bytes'))})"
    return text


def budget_line(ens: dict[str, Any], metric: str) -> str:
    """What the latency or size budget kept, against the same method on all members."""
    b, full = ens["budget"], ens["budget"]["all_members"]
    limits = []
    if b.get("max_latency_ms") is not None:
        limits.append(f"max_latency_ms={b['max_latency_ms']:g}")
    if b.get("max_members") is not None:
        limits.append(f"max_members={b['max_members']}")
    unit = "ms" if b["cost_unit"] != "members" else "members"
    full_test = full["test_scores"].get(metric)
    against = f", test {metric} {full_test:.4f}" if full_test is not None else ""
    return (
        f"budget ({', '.join(limits)}): serves {', '.join(b['members'])} "
        f"({b['cost']:.1f} {unit}), test {metric} {ens['test_metric']:.4f}; without the budget "
        f"({full['members']} member(s) with weight): {full['cost']:.1f} {unit}{against} "
        "(pareto.png)"
    )


def _coverage_and_size(test: dict[str, Any]) -> str:
    size = (
        f"mean interval width {test['mean_width']:.4g}"
        if "mean_width" in test
        else f"mean set size {test['mean_set_size']:.2f}"
    )
    return f"test coverage {test['coverage']:.3f}, {size}"


def refit_conformal_figures(refit: dict[str, Any] | None) -> dict[str, Any] | None:
    """The conformal test figures of an ensemble served with refits (``refit_test_*``), or
    None: the stage measured the bagged members' intervals, the model serves the refits'."""
    scores = (refit or {}).get("test_scores") or {}
    prefix = "conformal_"
    found = {k.removeprefix(prefix): v for k, v in scores.items() if k.startswith(prefix)}
    return found or None


def conformal_line(c: dict[str, Any], served: dict[str, Any] | None = None) -> str:
    """The served intervals' or prediction sets' coverage on test, in one line: with
    ``served`` (an ensemble serving refits), theirs, then the bagged members' the stage
    calibrated on."""
    what = "intervals" if c["kind"] == "interval" else "prediction sets"
    line = (
        f"conformal {what} for {100 * c['coverage']:g}% coverage (calibrated on "
        f"{c['n_calibration']} {c['calibrated_on']}): "
    )
    if served is None:
        line += _coverage_and_size(c["test"])
    else:
        line += (
            f"served with refits, {_coverage_and_size(served)} (the bagged members': "
            f"{_coverage_and_size(c['test']).removeprefix('test ')})"
        )
    if not math.isfinite(c["q"]):  # the guarantee needs rows beyond the level's quantile
        needed = least_calibration_rows(c["coverage"])
        bound = "are infinite" if c["kind"] == "interval" else "hold every class"
        line += (
            f"; the {what} {bound}: {100 * c['coverage']:g}% needs at least {needed} "
            "calibration rows"
        )
    return line


def champion_line(c: dict[str, Any]) -> str:
    """The champion/challenger decision on the registered model, with both test scores."""
    scores = ""
    if isinstance(c.get("challenger"), Real):
        scores = f" (test {c['metric']} {c['challenger']:.4f}"
        if isinstance(c.get("champion"), Real):
            scores += f" against champion v{c['champion_version']}'s {c['champion']:.4f}"
        elif "champion_version" in c:
            scores += f"; champion v{c['champion_version']}"
        scores += ")"
    return f"registered {c['model']} v{c['challenger_version']}: {c['decision']}{scores}"


def refit_line(ens: dict[str, Any], members: list[dict[str, Any]], metric: str) -> str:
    """What the refit on all rows changed on test, and which members it did not reach."""
    refit = ens["refit"]
    each = ", ".join(
        f"{m['name']} {_fmt(m.get('test_metric'))} -> {_fmt(m['refit'].get('test_metric'))}"
        for m in members
        if m.get("refit")
        and m["name"] not in refit["fell_back"]  # its bag is served, not its refit
        and m["name"] in ens["weights"]
        and ens["weights"][m["name"]] > 0
    )
    back = refit["fell_back"]
    missing = f"; serving the folds' mean for {', '.join(back)}" if back else ""
    return (
        f"refit on all rows (served): test {metric} {ens['test_metric']:.4f} -> "
        f"{refit['test_metric']:.4f} with the out-of-fold weights ({each}){missing}"
    )


def calibration_line(cal: dict[str, Any]) -> str:
    """Temperature scaling's effect on test, in one line (or why there was none)."""
    if cal["method"] == "none":
        return f"not calibrated: {cal['reason']}"
    before, after = cal["test_before"], cal["test_after"]
    changes = ", ".join(
        f"{label} {before[k]:.4f} -> {after[k]:.4f}"
        for k, label in (("log_loss", "log loss"), ("brier", "Brier"), ("ece", "ECE"))
    )
    return (
        f"calibrated (temperature {cal['temperature']:.3f}, fitted on {cal['fitted_on']}): "
        f"test {changes}"
    )


def write_summary(summary: dict[str, Any], output_dir: str | Path) -> Path:
    """Write ``summary.json`` (scripts and CI read it) and return its path."""
    path = Path(output_dir) / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    return path


def leaderboard_markdown(summary: dict[str, Any]) -> str:
    """The leaderboard as a Markdown table (MLflow's artifact view renders it)."""
    header, rows = _table(summary)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    ens = summary.get("ensemble")
    title = f"# {summary['experiment']}: sweep {summary['sweep_id']}\n\n"
    notes = (
        "\n".join(f"- {line}" for line in honest_lines(ens, summary["metric"]))
        if (ens and "cross_fitted" in ens)
        else ""
    )
    return title + "\n".join(lines) + ("\n\n" + notes if notes else "") + "\n"


def leaderboard_html(summary: dict[str, Any]) -> str:
    """The leaderboard as a standalone HTML page (MLflow's artifact view shows it)."""
    header, rows = _table(summary)
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    ens = summary.get("ensemble")
    notes = (
        "".join(f"<p>{html.escape(line)}</p>" for line in honest_lines(ens, summary["metric"]))
        if ens and "cross_fitted" in ens
        else ""
    )
    title = html.escape(f"{summary['experiment']}: sweep {summary['sweep_id']}")
    style = (
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body><h2>{title}</h2>"
        f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>{notes}"
        "</body></html>\n"
    )
