"""The ensemble as an MLflow pyfunc model, logged as "models from code": MLflow copies this
file into the model and runs it on load, so no pickled Python object is involved.

Raw features in; member models predict them; the fitted ensemble combines the predictions.
"""

import json
from pathlib import Path

import joblib
import mlflow
import numpy as np


class EnsembleModel(mlflow.pyfunc.PythonModel):
    """Raw features in, the ensemble's prediction out: (n, classes) probabilities or (n,)."""

    def load_context(self, context) -> None:
        """Load every member model and the fitted ensemble from the model's artifacts."""
        from models.base import Task

        spec = json.loads(Path(context.artifacts["ensemble_spec"]).read_text())
        self.task = Task(spec["task"]["kind"], spec["task"]["n_classes"])
        self.kinds = spec["kinds"]
        self.estimator = joblib.load(context.artifacts["estimator"])
        self.members = []
        for i, kind in enumerate(self.kinds):
            path = context.artifacts[f"member_{i}"]
            if kind == "keras":
                import keras

                self.members.append(keras.saving.load_model(path, compile=False))
            else:
                self.members.append(joblib.load(path))

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        """Predict every member on the raw features and combine them as fitted."""
        from models import shallow, training

        X = np.asarray(model_input, dtype=np.float32)
        P = np.stack(
            [
                training.predict(m, X, self.task)
                if kind == "keras"
                else shallow.predict(m, X, self.task)
                for m, kind in zip(self.members, self.kinds, strict=True)
            ]
        )
        return self.estimator.predict(P)


mlflow.models.set_model(EnsembleModel())
