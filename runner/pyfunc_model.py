"""The ensemble as an MLflow pyfunc model, logged as "models from code": MLflow copies this
file into the model and runs it on load. It imports only ``models`` and ``ensembles`` (both
shipped with the model as code), never the runner.

Raw features in; each member is loaded and predicts through its kind's registry entry
(``models.load_member``: the kind's own loader, its custom objects registered, its sha256
checked); the fitted ensemble combines the predictions.
"""

import json
from pathlib import Path

import joblib
import mlflow
import numpy as np


class EnsembleModel(mlflow.pyfunc.PythonModel):
    """Raw features in, the ensemble's prediction out: (n, classes) probabilities or (n,)."""

    def load_context(self, context) -> None:
        """Load every member and the fitted ensemble from the model's artifacts."""
        import models
        from models.base import Task

        spec = json.loads(Path(context.artifacts["ensemble_spec"]).read_text())
        self.task = Task(spec["task"]["kind"], spec["task"]["n_classes"])
        self.members = [
            models.load_member(context.artifacts[f"member_{i}"]) for i in range(len(spec["names"]))
        ]
        self.estimator = joblib.load(context.artifacts["estimator"])

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        """Predict every member on the raw features and combine them as fitted."""
        X = np.asarray(model_input, dtype=np.float32)
        P = np.stack([kind.predict(model, X, self.task) for kind, model in self.members])
        return self.estimator.predict(P)


mlflow.models.set_model(EnsembleModel())
