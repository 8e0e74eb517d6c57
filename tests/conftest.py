"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory, as a new user's."""
    d = tmp_path / "work"
    d.mkdir()
    return d
