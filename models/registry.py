"""The registry's storage: name -> model kind entry, and the module that registers each.

``models/__init__.py`` fills it with the zoo's kinds, explicitly; a kind from outside this
package calls ``register`` from its own module. Kept apart from the kinds so that code which
loads a member of any kind (``models.store``, the transfer learner's base) imports no kind.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import site
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from models.kind import ModelKind

REGISTRY: dict[str, ModelKind] = {}
CONTRACT = ("check", "build", "fit", "predict", "save", "load")  # what every kind implements
_MODULES: dict[str, str] = {}  # kind name -> the module whose import registers it
log = logging.getLogger(__name__)
_WARNED: set[tuple[Path, str]] = set()  # (module file, import) said to be left unshipped


def register(entry: ModelKind, module: str | None = None) -> ModelKind:
    """Add a model kind (call it from the kind's own module, so importing that module
    registers the kind); the name must be new. ``module`` (default: the calling module, the
    one a served model imports to find the kind again) is what the saved members name."""
    if not isinstance(entry, ModelKind):
        raise TypeError(f"register takes a models.kind.ModelKind, got {type(entry).__name__}")
    if entry.name in REGISTRY and REGISTRY[entry.name] is not entry:
        raise ValueError(f"model {entry.name!r} is already registered")
    missing = [m for m in CONTRACT if getattr(type(entry), m) is getattr(ModelKind, m)]
    if missing:  # found at registration, not as a bare NotImplementedError mid-sweep
        raise TypeError(
            f"model kind {entry.name!r} ({type(entry).__name__}) does not implement "
            f"{', '.join(missing)}; a kind implements {', '.join(CONTRACT)}"
        )
    if module is None:  # the caller's, not the class's: SklearnKind(...) made elsewhere is
        module = sys._getframe(1).f_globals.get("__name__") or type(entry).__module__  # theirs
    REGISTRY[entry.name] = entry
    _MODULES[entry.name] = module
    return entry


def module_of(name: str) -> str:
    """The module whose import registers the kind ``name``."""
    get(name)
    return _MODULES[name]


def is_zoo(module: str) -> bool:
    """Whether ``module`` (a kind's, as ``module_of`` names it) is the zoo's own, shipped
    with ``models/``, rather than a user's."""
    return module.split(".")[0] == "models"


def get(name: str) -> ModelKind:
    """The registry entry for ``name``, or ValueError listing the known models."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}"
        ) from None


class CodeNotFound(ValueError):
    """A kind's registering module whose code cannot be found to ship with a served model."""


def code_path(module: str) -> Path:
    """The file or package folder that holds ``module`` (a kind's registering module), as a
    served model ships it to import the kind elsewhere; ValueError where there is none to
    ship (a namespace package spread over folders, or a module not found)."""
    top = module.split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is not None and spec.origin is not None:
        origin = Path(spec.origin)
        return origin.parent if origin.name == "__init__.py" else origin
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if len(folders) == 1:  # a namespace package (no __init__.py) in one folder: that folder
        return Path(folders[0])
    raise CodeNotFound(
        f"cannot find the code of module {module!r} to ship with a served model"
        + (f" (its package {top!r} spans {len(folders)} folders)" if folders else "")
    )


def _imported_tops(path: Path) -> set[str]:
    """The top-level modules the code at ``path`` (a file, or every file of a package
    folder) imports absolutely."""
    names: set[str] = set()
    for source in [path] if path.is_file() else sorted(path.rglob("*.py")):
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _library_folders() -> set[Path]:
    """Where installed packages and the standard library live: their siblings are not a
    user's helpers."""
    paths = {*sysconfig.get_paths().values(), *site.getsitepackages()}
    paths.add(site.getusersitepackages())
    return {Path(p).resolve() for p in paths if p}


def users_code(modules: Sequence[str]) -> list[Path]:
    """The files and folders of ``modules`` (kinds' registering modules) that are the user's
    own code, not the zoo's nor an installed package's, with the helpers beside them that they
    import (``shipped_paths``): what a machine without the user's folder needs to import them."""
    found: list[Path] = []
    for module in modules:
        if is_zoo(module) or code_path(module).parent.resolve() in _library_folders():
            continue
        found += [p for p in shipped_paths(module) if p not in found]
    return found


def shipped_paths(module: str) -> list[Path]:
    """What a served model ships to import the kind registered by ``module`` elsewhere: its
    file or package, and the modules beside it that it imports (a helper ``my_utils.py`` in
    the folder of ``my_kind.py``; transitively), found from their import statements.
    Nothing beside a kind that is installed as a package, or that is the zoo's own."""
    first = code_path(module)
    folder = first.parent
    top = module.split(".")[0]
    if is_zoo(module) or folder.resolve() in _library_folders():
        return [first]
    found, queue, seen = [first], [first], {top, "models", "ensembles", "runner"}
    libraries = _library_folders()
    while queue:
        importer = queue.pop()
        for name in sorted(_imported_tops(importer) - seen):
            seen.add(name)
            try:
                path = code_path(name)
            except (ValueError, ImportError):  # CodeNotFound, or a module that cannot be found
                continue
            if path.parent == folder:
                found.append(path)
                queue.append(path)
            elif (
                path.is_absolute()
                and not _under(path.resolve(), libraries)
                and (importer, name) not in _WARNED
            ):
                _WARNED.add((importer, name))  # once a process: several steps ask
                log.warning(
                    "%s imports %s from %s, outside the kind's folder: a served model does not "
                    "ship it; install it where the model is served, or move it beside %s",
                    importer.name,
                    name,
                    path.parent,
                    first.name,
                )
    return found


def _under(path: Path, folders: set[Path]) -> bool:
    """Whether ``path`` is inside one of ``folders``."""
    return any(folder == path.parent or folder in path.parents for folder in folders)
