"""Environment defaults for every process of a sweep: the driver and, through Ray's runtime
environment, the workers of a cluster it attaches to.

Kept free of MLflow, Ray and TensorFlow: it must be applied before any of them is imported.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

DEFAULTS = {
    # MLflow draws a progress bar per artifact download: noise in a command's output.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # Against a tracking server MLflow prints two "View run ... at" lines for every run it
    # ends, after one more request to learn the run's name: a sweep of thousands of trials
    # would bury the progress view. The summary names the runs.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # MLflow's HTTP retries, bounded to about half a minute (its default takes minutes
    # against a dead server)
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow's C++ start-up chatter
    "KERAS_BACKEND": "tensorflow",
}


def current(env: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """The defaults, each overridden by the value ``env`` already has."""
    return {key: env.get(key, value) for key, value in DEFAULTS.items()}


def apply(env: MutableMapping[str, str] = os.environ) -> None:
    """Set every default ``env`` does not set yet."""
    for key, value in DEFAULTS.items():
        env.setdefault(key, value)
