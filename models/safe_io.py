"""Safe persistence of scikit-learn estimators and fitted ensembles: skops, never pickle.

``load`` asks skops which types a file would build beyond its own trusted defaults (the
builtins, NumPy and SciPy containers it knows) and refuses the file unless every one of them
is defined under an allowed prefix; only then does it load, trusting exactly those types.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from typing import Any

from models.store import ArtifactError

# What our artifacts hold beyond skops' defaults: scikit-learn's estimators and their Cython
# helpers (trees, KD-trees, distance metrics, calibrators) and this project's ensembles
# (with their temperature scaling).
ALLOWED_PREFIXES: tuple[str, ...] = (
    "sklearn.",
    "ensembles.methods.",
    "ensembles.calibration.",
    "ensembles.budget.",
)


# functions our artifacts hold by reference (none so far): every other function is refused
ALLOWED_FUNCTIONS: frozenset[str] = frozenset()


def dump(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` to ``path`` in the skops format; returns the path."""
    path = Path(path)
    import skops.io as sio  # about 0.7 s: only where a model is saved or loaded

    sio.dump(obj, path)
    return path


def _allowed(name: str) -> bool:
    """Whether ``name`` is under an allowed prefix and names an object defined there."""
    # the second half refuses names re-exported into an allowed module, such as
    # ``ensembles.methods.minimize`` (scipy's function, passing the prefix test alone)
    if not name.startswith(ALLOWED_PREFIXES):
        return False
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable module, then attributes
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except Exception:  # not a module (or one that fails to import): try a shorter one
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        module = getattr(obj, "__module__", None)
        if not (isinstance(module, str) and f"{module}.".startswith(ALLOWED_PREFIXES)):
            return False
        # classes only: a function such as sklearn.datasets.dump_svmlight_file, held by a
        # FunctionTransformer, would run with arguments the file chooses (writing files)
        return isinstance(obj, type) or name in ALLOWED_FUNCTIONS
    return False


def untrusted_types(path: str | Path) -> list[str]:
    """The types in the skops file at ``path`` that skops does not trust by default."""
    try:
        import skops.io as sio

        return sorted(sio.get_untrusted_types(file=Path(path)))
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise ArtifactError(f"cannot read {path} as a skops file: {err}") from None


def load(path: str | Path) -> Any:
    """The object in the skops file at ``path``, or ArtifactError naming refused types."""
    vetted = untrusted_types(path)
    refused = [name for name in vetted if not _allowed(name)]
    if refused:
        raise ArtifactError(
            f"refusing to load {path}: it holds what the allow-list does not trust (classes "
            f"defined under {', '.join(ALLOWED_PREFIXES)}; no functions): {', '.join(refused)}"
        )
    import skops.io as sio

    return sio.load(Path(path), trusted=vetted)
