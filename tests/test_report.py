"""The leaderboard and summary.json."""

from __future__ import annotations

import json

from runner.report import leaderboard, write_summary

SUMMARY = {
    "metric": "accuracy",
    "members": [
        {
            "name": "a",
            "model": "mlp",
            "status": "FINISHED",
            "val_metric": 0.9,
            "test_metric": 0.8,
            "train_seconds": 1.0,
        },
        {
            "name": "b",
            "model": "svm",
            "status": "FINISHED",
            "val_metric": 0.95,
            "test_metric": 0.9,
            "train_seconds": 2.0,
        },
        {"name": "c", "model": "selu", "status": "FAILED", "train_seconds": None},
    ],
    "ensemble": {
        "method": "weighted",
        "weights": {"a": 0.25, "b": 0.75},
        "val_metric": 0.96,
        "test_metric": 0.93,
    },
}


def test_leaderboard_puts_ensemble_first_then_members_best_val_first():
    lines = leaderboard(SUMMARY).splitlines()
    assert lines[0].split()[:3] == ["member", "model", "status"]
    assert lines[2].startswith("ensemble (weighted)")
    names = [line.split()[0] for line in lines[3:]]
    assert names == ["b", "a", "c"]
    assert "0.750" in lines[3] and "FAILED" in lines[5]


def test_leaderboard_has_no_terminal_control_codes():
    assert "\x1b" not in leaderboard(SUMMARY)


def test_write_summary_round_trips(tmp_path):
    path = write_summary(SUMMARY, tmp_path / "out")
    assert json.loads(path.read_text()) == SUMMARY


def test_leaderboard_markdown_and_html_hold_every_row():
    from runner.report import leaderboard_html, leaderboard_markdown

    summary = {**SUMMARY, "experiment": "quickstart", "sweep_id": "s1"}
    md = leaderboard_markdown(summary).splitlines()
    rows = [line for line in md if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| member | model |")
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["ensemble (weighted)", "b", "a", "c"]
    page = leaderboard_html(summary)
    assert page.startswith("<!DOCTYPE html>") and page.count("<tr>") == 5
    assert "<td>ensemble (weighted)</td>" in page
