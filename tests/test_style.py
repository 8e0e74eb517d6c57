"""The code base stays `ruff check` clean (configured in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from helpers import ROOT


@pytest.mark.skipif(
    shutil.which("ruff") is None, reason="ruff is not installed (pip install -e '.[dev]')"
)
def test_ruff_check_is_clean():
    done = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
