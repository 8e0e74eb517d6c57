"""Whether a folder can be made at a path, checked the one way that also holds for root on
read-only or virtual file systems: make and remove a folder in the nearest existing ancestor.

Imports neither MLflow nor Ray.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def unmakeable_folder(path: Path) -> str | None:
    """Why no folder can be made at ``path`` (``"ANCESTOR: REASON"``), or None when one can
    (or it exists as a folder). Leaves nothing behind."""
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    if not existing.is_dir():
        return f"{existing}: not a directory"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".runner-check-", dir=existing))
    except OSError as err:
        return f"{existing}: {err.strerror}"
    return None
