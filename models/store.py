"""A member's saved model: a folder holding the model file and ``kind.json`` (which kind
wrote it, the module that registers that kind, the file and its sha256). A bagged member's
folder holds one such folder per fold and a ``kind.json`` listing them with the sha256 of
each fold's manifest.

``load_member`` reads the manifest, imports the kind's module when the kind is not
registered yet (a kind from outside this package), checks the checksum and asks the kind
to load the file, so loading never depends on what the caller imported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.bag import Bag
from models.keras_kind import load_keras
from models.member import Member
from models.registry import REGISTRY, get, module_of
from models.tabular import TablePrep, TargetScaler

MANIFEST = "kind.json"
PREP_FILE = "prep.json"  # the member's table encoding, fitted on its training rows


class ArtifactError(ValueError):
    """A saved member that cannot be trusted or read; one line for the user."""


# the key of a served ensemble's ``model_config`` (in its MLmodel file) pinning the sha256
# of its ensemble_spec.json, which pins the rest
SPEC_SHA256 = "ensemble_spec_sha256"


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_bytes(folder: str | Path) -> int:
    """The bytes of every file under ``folder``: a saved model's size on disk."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def save_member(kind: str, member: Member | Any, folder: str | Path) -> Path:
    """Save a member (or a bare model of ``kind``) into ``folder``: the model with its
    kind's ``save``, the table encoding and target scale beside it, and the manifest."""
    entry = get(kind)
    if not isinstance(member, Member):
        member = Member(entry, member)
    if getattr(member.kind, "name", kind) != kind:
        raise ValueError(
            f"this member is of kind {member.kind.name!r}, not {kind!r}: save it as its own kind"
        )
    folder = _claim(Path(folder))
    folder.mkdir(parents=True, exist_ok=True)
    path = entry.save(member.model, folder)
    manifest: dict[str, Any] = {
        "kind": kind,
        "module": module_of(kind),
        "framework": entry.framework,
        "file": path.name,
        "sha256": sha256(path),
    }
    if member.prep is not None:
        prep = folder / PREP_FILE
        prep.write_text(json.dumps(member.prep.to_dict()))
        manifest["prep"] = {"file": prep.name, "sha256": sha256(prep)}
    if member.target is not None:
        manifest["target"] = vars(member.target)
    if member.pixel_range is not None:
        manifest["pixel_range"] = list(member.pixel_range)
    if member.image_shape is not None:
        manifest["image_shape"] = list(member.image_shape)
    if member.resizes_images:
        manifest["resizes_images"] = True
    if member.feature_names is not None:
        manifest["feature_names"] = list(member.feature_names)
    # any other file the kind wrote (a booster's estimator.txt: which class reads its model)
    listed = {path.name, PREP_FILE, MANIFEST}  # in the member's folder itself
    others = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in listed
    )
    if others:
        manifest["files"] = {name: sha256(folder / name) for name in others}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return folder


def _refuse_foreign(folder: Path) -> None:
    """ValueError unless ``folder`` is new, empty or a saved member (or bag): saving replaces
    what is there, and a folder of other files (a project's) is not the saver's to delete."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"cannot save a member to {folder}: it is a file, not a folder")
    if _is_saved_member(folder):
        return
    held = sorted(p.name for p in folder.iterdir())
    if held:
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise ValueError(
            f"cannot save a member to {folder}: it holds files that are not a saved member "
            f"({shown}); save to a new or empty folder"
        )


def _claim(folder: Path) -> Path:
    """``folder`` emptied for a member to be saved in: a member saved there before is
    removed (its files would be listed as the new one's), anything else refused."""
    import shutil

    _refuse_foreign(folder)
    if folder.exists() and _is_saved_member(folder):
        shutil.rmtree(folder)
    return folder


def _is_saved_member(folder: Path) -> bool:
    """Whether ``folder`` holds a saved member or bag: a manifest that reads as one (a file
    of the same name among a project's does not make it one)."""
    try:
        manifest = read_manifest(folder)
    except ArtifactError:
        return False
    return isinstance(manifest, dict) and "kind" in manifest


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a saved member, or ArtifactError saying what is missing."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder} is not a saved member: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise ArtifactError(f"refusing to load {path}: not JSON ({err})") from None
    bag = manifest.get("bag") if isinstance(manifest, dict) else None
    entries = bag if isinstance(bag, list) else [manifest]
    if not all(isinstance(e, dict) and e.get("sha256") for e in entries):
        raise ArtifactError(
            f"refusing to load {path}: it records no sha256 for a file (a member saved "
            "without checksums, or an edited manifest)"
        )
    return manifest


def _checked(folder: Path, name: str, recorded: str) -> Path:
    """The file ``name`` of a saved member, after its sha256 matched the manifest's;
    ArtifactError for a name outside the member's folder."""
    _inside(folder, name)
    path = folder / name
    if not path.is_file():
        raise ArtifactError(f"saved member {folder} lacks its file {name!r}")
    digest = sha256(path)
    if digest != recorded:
        raise ArtifactError(
            f"refusing to load {path}: its sha256 is {digest}, the manifest recorded "
            f"{recorded} (the file changed after it was saved)"
        )
    return path


def save_bag(kind: str, fold_folders: list[str | Path], folder: str | Path) -> Path:
    """Copy the saved members of a bagged member's folds into ``folder`` (``fold0``, ...)
    and write the bag's manifest. The bag is put together beside ``folder`` and then takes
    its place whole: a bag saved there before is replaced (its folds may be the sources),
    and one that fails to save leaves what was there."""
    import shutil
    import tempfile

    entry = get(kind)
    folder = Path(folder)
    _refuse_foreign(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        folds = []
        for k, source in enumerate(fold_folders):
            target = staging / f"fold{k}"
            shutil.copytree(source, target)
            if read_manifest(target)["kind"] != kind:
                raise ArtifactError(f"fold {k} at {source} is not a saved {kind!r} member")
            folds.append({"folder": target.name, "sha256": sha256(target / MANIFEST)})
        manifest = {
            "kind": kind,
            "module": module_of(kind),
            "framework": entry.framework,
            "bag": folds,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def verify_member(folder: str | Path) -> None:
    """Check every file a saved member's manifest lists against its sha256 (a bag's folds
    too), importing and loading nothing: ArtifactError naming the first that differs."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if "bag" in manifest:
        for fold in manifest["bag"]:
            verify_member(_checked(folder, f"{fold['folder']}/{MANIFEST}", fold["sha256"]).parent)
        return
    _checked(folder, manifest["file"], manifest["sha256"])
    if "prep" in manifest:
        _checked(folder, manifest["prep"]["file"], manifest["prep"]["sha256"])
    for name, digest in _listed_files(folder, manifest).items():
        _checked(folder, name, digest)


def _listed_files(folder: Path, manifest: Mapping[str, Any]) -> dict[str, str]:
    """The manifest's other files (name -> sha256); ArtifactError for a name outside the
    member's folder."""
    files = manifest.get("files") or {}
    for name in files:
        _inside(folder, name)
    return dict(files)


def _inside(folder: Path, name: str) -> None:
    """ArtifactError unless the manifest's ``name`` is a path inside the member's folder."""
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ArtifactError(f"refusing to load {folder}: its manifest names {name!r}")


def load_member(folder: str | Path) -> Member | Bag:
    """The member saved in ``folder`` (``.kind`` is its registry entry), every file's sha256
    checked against the manifest first; a bagged member comes back as a ``Bag`` of its
    folds' members."""
    verify_member(folder)
    return _load_verified(Path(folder))


def _load_verified(folder: Path) -> Member | Bag:
    """``load_member`` after ``verify_member`` passed on ``folder``."""
    manifest = read_manifest(folder)
    if "bag" in manifest:
        return Bag([_load_verified(folder / fold["folder"]) for fold in manifest["bag"]])
    name = manifest["kind"]
    path = folder / manifest["file"]
    if name not in REGISTRY and manifest.get("module"):
        _import_kind_module(folder, manifest["module"], name)  # registered by its own module
    entry = get(name)
    prep = None
    if "prep" in manifest:
        prep_path = folder / manifest["prep"]["file"]
        prep = TablePrep.from_dict(json.loads(prep_path.read_text()))
    target = TargetScaler(**manifest["target"]) if "target" in manifest else None
    pixels, names = manifest.get("pixel_range"), manifest.get("feature_names")
    return Member(
        entry,
        entry.load(path),
        prep,
        target,
        pixel_range=None if pixels is None else tuple(pixels),
        feature_names=None if names is None else tuple(names),
        image_shape=tuple(manifest["image_shape"]) if "image_shape" in manifest else None,
        resizes_images=bool(manifest.get("resizes_images", False)),
    )


def _import_kind_module(folder: Path, module: str, kind: str) -> None:
    """Import the module that registers a member's kind, unless Python's search path leads
    into the member's own folder (or its bag's), where a file put beside the model would be
    imported as code that shipped with it. Nothing is imported before that is checked."""
    import importlib
    import sys

    mine = [folder.resolve()]
    mine += [p for p in mine[0].parents if (p / MANIFEST).is_file()]  # a fold's bag
    for entry in sys.path:
        where = Path(entry or ".").resolve()
        if any(where == root or root in where.parents for root in mine):
            raise ArtifactError(
                f"refusing to load {folder}: its kind's module {module!r} would be looked for "
                f"inside the saved member ({where} is on Python's path)"
            )
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or not (module == err.name or module.startswith(f"{err.name}.")):
            raise  # the module is there, and an import of its own failed: its traceback says
        raise ModuleNotFoundError(
            f"model kind {kind!r} of {folder} is registered by module {module!r}, which is not "
            "importable here: put its folder on PYTHONPATH (a served ensemble ships it)",
            name=err.name,
        ) from None


def load_model(path: str | Path) -> Any:
    """A saved member's model: a member folder, or a bare ``.keras`` file (the zoo's custom
    classes registered)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".keras":
        return load_keras(path, "models.custom")
    member = load_member(path)
    if isinstance(member, Bag):
        raise ArtifactError(
            f"{path} holds a bagged member ({len(member.members)} models), not one model"
        )
    return member.model
