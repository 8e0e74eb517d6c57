"""The registry's storage: name -> model kind entry, and the module that registers each.

``models/__init__.py`` fills it with the zoo's kinds, explicitly; a kind from outside this
package calls ``register`` from its own module. Kept apart from the kinds so that code which
loads a member of any kind (``models.store``, the transfer learner's base) imports no kind.
"""

from __future__ import annotations

from models.kind import ModelKind

REGISTRY: dict[str, ModelKind] = {}
_MODULES: dict[str, str] = {}  # kind name -> the module whose import registers it


def register(entry: ModelKind, module: str | None = None) -> ModelKind:
    """Add a model kind (call it from the kind's own module, so importing that module
    registers the kind); the name must be new."""
    if not isinstance(entry, ModelKind):
        raise TypeError(f"register takes a models.kind.ModelKind, got {type(entry).__name__}")
    if entry.name in REGISTRY and REGISTRY[entry.name] is not entry:
        raise ValueError(f"model {entry.name!r} is already registered")
    REGISTRY[entry.name] = entry
    _MODULES[entry.name] = module or type(entry).__module__
    return entry


def module_of(name: str) -> str:
    """The module whose import registers the kind ``name``."""
    get(name)
    return _MODULES[name]


def get(name: str) -> ModelKind:
    """The registry entry for ``name``, or ValueError listing the known models."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}"
        ) from None
