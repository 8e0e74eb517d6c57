"""The parameters a sweep's ``ensemble=METHOD`` gives its method (``conf/ensemble/METHOD.yaml``),
and values read as the types of the method's defaults, so that one setting has one settings
hash whether it was written ``l2=0`` or ``l2=0.0``, on the command line of a sweep or of
``python -m ensembles``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner import CONF_DIR


def sweep_defaults(method: str) -> dict[str, Any]:
    """The method's parameters as a sweep's ``ensemble=METHOD`` sets them ({} without that
    config file), so that re-ensembling "the same way" fits the same ensemble."""
    import yaml

    path = CONF_DIR / "ensemble" / f"{method}.yaml"
    if not path.is_file():
        return {}
    config = yaml.safe_load(path.read_text()) or {}
    return dict(config.get("params") or {}) if config.get("method") == method else {}


def as_default_types(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with a whole number given for a parameter whose default (in the method's
    signature) is a float made that float."""
    import inspect

    import ensembles

    signature = inspect.signature(ensembles.METHODS[method])
    floats = {k for k, p in signature.parameters.items() if isinstance(p.default, float)}
    return {
        key: float(value) if key in floats and type(value) is int else value
        for key, value in params.items()
    }
