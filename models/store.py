"""A member's saved model: a folder holding the model file and ``kind.json`` (which kind
wrote it, the module that registers that kind, the file and its sha256).

``load_member`` reads the manifest, imports the kind's module when the kind is not
registered yet (a kind from outside this package), checks the checksum and asks the kind
to load the file, so loading never depends on what the caller imported.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

from models.keras_kind import load_keras
from models.registry import REGISTRY, get, module_of

MANIFEST = "kind.json"


class ArtifactError(ValueError):
    """A saved member that cannot be trusted or read; one line for the user."""


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_member(kind: str, model: Any, folder: str | Path) -> Path:
    """Save ``model`` with its kind's ``save`` into ``folder`` and write the manifest."""
    entry = get(kind)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = entry.save(model, folder)
    manifest = {
        "kind": kind,
        "module": module_of(kind),
        "framework": entry.framework,
        "file": path.name,
        "sha256": sha256(path),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return folder


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a saved member, or ArtifactError saying what is missing."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder} is not a saved member: it has no {MANIFEST}")
    return json.loads(path.read_text())


def load_member(folder: str | Path) -> tuple[Any, Any]:
    """(the kind's registry entry, the model) of the member saved in ``folder``."""
    manifest = read_manifest(folder)
    name = manifest["kind"]
    if name not in REGISTRY and manifest.get("module"):
        importlib.import_module(manifest["module"])  # a kind registered by its own module
    entry = get(name)
    path = Path(folder) / manifest["file"]
    if not path.is_file():
        raise ArtifactError(f"saved member {folder} lacks its model file {manifest['file']!r}")
    digest = sha256(path)
    if digest != manifest["sha256"]:
        raise ArtifactError(
            f"refusing to load {path}: its sha256 is {digest}, the manifest recorded "
            f"{manifest['sha256']} (the file changed after it was saved)"
        )
    return entry, entry.load(path)


def load_model(path: str | Path) -> Any:
    """A saved member's model: a member folder, or a bare ``.keras`` file (the zoo's custom
    classes registered)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".keras":
        return load_keras(path, "models.custom")
    return load_member(path)[1]
