"""The ensemble as an MLflow pyfunc model, logged as "models from code": MLflow copies this
file into the model and runs it on load. It imports only ``models`` and ``ensembles`` (both
shipped with the model as code), never the runner.

Raw rows in (a DataFrame for members fitted on a table); each member is loaded and predicts
through its kind's registry entry (``models.load_member``: the kind's own loader, its custom
objects registered, its sha256 checked; a bagged member averages its folds' models); the
fitted ensemble (``estimator.skops``, its sha256 checked against ``ensemble_spec.json``,
loaded by ``models.safe_io``: no pickle) combines the predictions.
"""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


class BadInput(MlflowException, ValueError):
    """Input the model cannot read, in one line: MLflow's scoring server answers 400 with
    this message (any other error becomes its generic "unexpected error" and a traceback)."""

    def __init__(self, message: str) -> None:
        self._said = message
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    # MLflow's scoring server rewrites the message as "Failed to predict data '<the request's
    # rows>'. Error: ...": a dump of the user's data (secrets too) before the one line
    @property
    def message(self) -> str:
        """The one line, whatever the server sets."""
        return self._said

    @message.setter
    def message(self, value: str) -> None:
        pass


class EnsembleModel(mlflow.pyfunc.PythonModel):
    """Raw features in, the ensemble's prediction out: (n, classes) probabilities or (n,)."""

    def load_context(self, context) -> None:
        """Load every member and the fitted ensemble from the model's artifacts; a failure in
        an environment with older libraries than the model was saved with says so in one
        line (the libraries' own errors name neither)."""
        self.older = _older_than_saved(Path(context.artifacts.get("ensemble_spec", ".")))
        try:
            self._load(context)  # importing models/ too, which an old library may fail
        except Exception as err:
            if type(err).__name__ != "ArtifactError":  # a file refused is said as that
                self._older_libraries(err, "loaded")
            raise

    def _older_libraries(self, err: Exception, done: str = "used") -> None:
        """RuntimeError in one line naming the libraries older here than the model's
        requirements, when there are any (``err``, a library's own error, names none)."""
        if not getattr(self, "older", None):
            return
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise RuntimeError(
            f"the model cannot be {done} here ({type(err).__name__}: {first}): this "
            f"environment has {', '.join(self.older)}; install the model's requirements "
            "(requirements.txt beside its MLmodel)"
        ) from err

    def _load(self, context) -> None:
        import models
        from models import safe_io
        from models.base import Task
        from models.store import SPEC_SHA256, ArtifactError, sha256

        if not {"ensemble_spec", "estimator"} <= set(context.artifacts):
            raise ArtifactError(
                "refusing to load the ensemble: its MLmodel lists no ensemble_spec or estimator "
                "artifact (it changed after the ensemble was logged)"
            )
        spec_path = Path(context.artifacts["ensemble_spec"])
        if not spec_path.is_file():
            raise ArtifactError(f"refusing to load the ensemble: {spec_path} is missing")
        pinned_spec = (context.model_config or {}).get(SPEC_SHA256)
        if pinned_spec is None:  # edited out, or a model logged before the spec was pinned
            raise ArtifactError(
                f"refusing to load {spec_path}: the model's MLmodel pins no sha256 for it "
                f"(config {SPEC_SHA256}); re-export the model with this release"
            )
        if (found := sha256(spec_path)) != pinned_spec:
            raise ArtifactError(
                f"refusing to load {spec_path}: its sha256 is {found}, the model's MLmodel "
                f"recorded {pinned_spec} (the file changed after it was logged)"
            )
        spec = _read_spec(spec_path, ArtifactError)
        self.task = Task(spec["task"]["kind"], spec["task"]["n_classes"])
        path, recorded = context.artifacts["estimator"], spec.get("estimator_sha256")
        if recorded is None:
            raise ArtifactError(
                f"refusing to load {path}: ensemble_spec.json records no estimator_sha256 "
                "(a model logged before estimators were checked); re-export it"
            )
        if not Path(path).is_file():
            raise ArtifactError(f"refusing to load the ensemble: {path} is missing")
        if (digest := sha256(path)) != recorded:
            raise ArtifactError(
                f"refusing to load {path}: its sha256 is {digest}, ensemble_spec.json recorded "
                f"{recorded} (the file changed after it was logged)"
            )
        self.estimator = safe_io.load(path)
        self.conformal = None
        if spec.get("conformal"):
            from ensembles.conformal import Conformal

            self.conformal = Conformal.from_dict(spec["conformal"])
        n_classes = spec["task"]["n_classes"]
        # a model logged before classes were recorded names them by their ids
        self.classes = spec.get("classes") or (
            [str(k) for k in range(n_classes)] if n_classes else None
        )
        self.n_members = len(spec["names"])
        self.names = list(spec["names"])
        # members with weight 0 in an averaging ensemble were not shipped: they add nothing
        used = spec.get("used", range(self.n_members))
        pinned = spec.get("member_sha256")
        if not isinstance(pinned, dict):  # edited out, or logged before members were pinned
            raise ArtifactError(
                f"refusing to load {spec_path}: it pins no member's sha256 (member_sha256); "
                "re-export the model with this release"
            )
        for i in used:
            if f"member_{i}" not in context.artifacts:
                raise ArtifactError(
                    f"refusing to load member {i} ({spec['names'][i]}): the model's MLmodel "
                    "lists no such artifact (it changed after the ensemble was logged)"
                )
            manifest = Path(context.artifacts[f"member_{i}"]) / "kind.json"
            if not manifest.is_file():
                raise ArtifactError(
                    f"refusing to load member {i} ({spec['names'][i]}): {manifest} is missing "
                    "(the member's folder changed after the ensemble was logged)"
                )
            if (found := sha256(manifest)) != pinned.get(str(i)):
                raise ArtifactError(
                    f"refusing to load member {i} ({spec['names'][i]}): its {manifest} has "
                    f"sha256 {found}, ensemble_spec.json recorded {pinned.get(str(i))} (the "
                    "member's folder changed after the ensemble was logged)"
                )
        self.members = {i: models.load_member(context.artifacts[f"member_{i}"]) for i in used}
        self.n_features = spec.get("n_features")
        found = self.members.values()
        # what the members learnt of their features: the training pixels' range (images),
        # or the features' names in a row's order
        self.pixel_range = next((m.pixel_range for m in found if m.pixel_range), None)
        self.feature_names = next((m.feature_names for m in found if m.feature_names), None)
        # the images' (height, width, channels), in members saved since it was recorded
        shapes = (getattr(m, "image_shape", None) for m in found)
        self.image_shape = next((tuple(s) for s in shapes if s), None)
        # trained on images resized from any size (data.image_size): it resizes them too
        self.resizes_images = any(getattr(m, "resizes_images", False) for m in found)

    # pd.DataFrame is one of the hints MLflow neither validates nor converts by, and the
    # signature declares no input schema: the model reads what it is given itself
    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        """Predict every member on the raw rows (a DataFrame for members fitted on a table,
        numbers otherwise) and combine them as fitted; with a coverage target, a frame of
        the prediction and its interval or prediction set (``ensembles.conformal``).
        ``params={"output": "labels"}`` returns each row's most probable class by name (with a
        coverage target, the frame's prediction and set hold names instead of class ids)."""
        output = (params or {}).get("output", "proba")
        if output not in ("proba", "labels") or (output == "labels" and self.classes is None):
            if self.classes is None and output == "labels":  # 'proba' is its values
                raise BadInput(
                    f"params output={output!r}: this model predicts values, it has no labels; "
                    "leave params output out"
                )
            allowed = "'proba' (the default)" + ("" if self.classes is None else " or 'labels'")
            raise BadInput(f"params output={output!r}: allowed: {allowed}")
        table = any(m.reads_table for m in self.members.values())
        X = self._table_rows(model_input) if table else self._feature_rows(model_input)
        if not table:
            self._check_scale(X)
        by_fold = None
        if len(X) == 0:  # no rows in, none out (a member's model may refuse an empty batch)
            k = self.task.n_classes
            P = np.zeros((self.n_members, 0, k) if k else (self.n_members, 0))
            pred = P[0]
        else:
            try:
                P, by_fold = self._member_predictions(X)
                self._check_finite(P)
                pred = self.estimator.predict(P)
            except BadInput:
                raise
            except ValueError as err:  # a member's own check of the rows (e.g. not a table)
                raise BadInput(str(err)) from err
            except Exception as err:
                self._older_libraries(err)  # a library older than the model's, said as that
                raise
        if self.conformal is None:
            if output == "labels":
                return np.asarray(self.classes, dtype=object)[np.argmax(pred, axis=1)]
            return pred
        from ensembles.conformal import served_frame, spread

        regression = P.ndim == 2
        out = served_frame(
            self.conformal,
            pred,
            spread(P if by_fold is None else by_fold, self.estimator.weights_)
            if regression
            else None,
            self.classes if output == "labels" else None,
        )
        if isinstance(model_input, pd.DataFrame) and len(model_input) == len(out):
            # each answer beside its row's label
            out.index = model_input.index
        return out

    def _check_finite(self, P: np.ndarray) -> None:
        """One line naming the members and rows whose predictions are NaN or infinite (a row
        far outside anything the members were trained on), not the ensemble's own check."""
        bad = ~np.isfinite(P.reshape(len(P), P.shape[1], -1)).all(axis=2)
        if not bad.any():
            return
        members = [self.names[i] for i in np.flatnonzero(bad.any(axis=1))]
        rows = np.flatnonzero(bad.any(axis=0))
        raise BadInput(
            f"member(s) {', '.join(members)} predict NaN or infinite values for {len(rows)} "
            f"row(s) ({', '.join(map(str, rows[:10]))}{', ...' if len(rows) > 10 else ''}): "
            "values far outside the training rows' ranges?"
        )

    def _member_predictions(self, X) -> tuple[np.ndarray, np.ndarray | None]:
        """The members' predictions (members, rows, ...), zeros for members not shipped; and,
        for intervals around a regression whose members are all bagged over as many folds
        (the stage measured them so: ``spread_by_fold``), the predictions by fold (folds,
        members, rows): the members' spread under the intervals is then taken fold by fold,
        as on the out-of-fold rows that calibrated them (the mean of K folds' models
        disagrees less than one fold's). Refitted members are single models: their spread."""
        from models.bag import Bag

        folds = {len(m.members) if isinstance(m, Bag) else 0 for m in self.members.values()}
        by_fold = self.conformal is not None and self.conformal.spread_by_fold
        if by_fold and self.task.n_classes is None and 0 not in folds:
            per = {i: m.fold_predictions(X, self.task) for i, m in self.members.items()}
            shapes = {p.shape for p in per.values()}
            if len(shapes) == 1:
                shape = shapes.pop()
                by_fold = np.stack([per.get(i, np.zeros(shape)) for i in range(self.n_members)])
                by_fold = by_fold.transpose(1, 0, 2)  # (folds, members, rows)
                return by_fold.mean(axis=0), by_fold
        preds = {i: m.predict(X, self.task) for i, m in self.members.items()}
        shape = next(iter(preds.values())).shape
        # a member not shipped has weight 0: uniform probabilities (or zeros) stand in for it
        filler = np.full(shape, 1.0 / shape[1]) if len(shape) == 2 else np.zeros(shape)
        return np.stack([preds.get(i, filler) for i in range(self.n_members)]), None

    def _feature_rows(self, model_input) -> np.ndarray:
        """Numbers as the members read them, float32 rows of ``n_features``: any numeric
        dtype (uint8 pixels, float64, integers), a frame (its columns matched by name when it
        names the features) or nested lists, images of the trained size ((n, h, w) or
        (n, h, w, c)) flattened, one row or image alone; one clear line for anything else, or
        for missing or infinite values."""
        names, pixels = self.feature_names, self.pixel_range is not None
        images = pixels or names is None  # a model logged before either was recorded: either
        values = model_input
        if isinstance(model_input, pd.DataFrame):
            # pixels are read by position: their names are the loader's (pixel_0_0 ...)
            values = _by_name(model_input, names) if names and not pixels else model_input
            if values is model_input and _values_as_names(model_input.columns):
                raise BadInput(
                    f"the input's column names ({_names(model_input.columns, 5)}) are numbers "
                    "that are not positions: a CSV request without a header row, whose first "
                    "row was read as names and lost; send a header row, or JSON"
                )
            try:
                values = values.to_numpy(dtype=np.float32, na_value=np.nan)
            except (TypeError, ValueError):  # pd.NA or None in object columns: missing values
                values = values.astype(object).where(values.notna(), np.nan)
        try:
            X = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise BadInput(f"the input must be numbers (features or pixels): {err}") from None
        width = self.n_features
        if width is None:  # a model logged before the feature count was recorded
            return X
        if X.size == 0 and len(X):  # rows without values: the request lost its columns
            raise BadInput(
                f"the input has {len(X)} row(s) but no values; this model takes rows of {width} "
                "features" + (" or images" if images else "")
            )
        if X.size == 0:
            return X.reshape(0, width)
        if X.ndim == 1 and X.size == width:
            X = X.reshape(1, width)  # one row
        elif self.image_shape is not None and (
            X.ndim >= 3
            or X.shape == self.image_shape[:2]
            or (not isinstance(model_input, pd.DataFrame) and self._grey_image_of_any_size(X))
        ):  # images: a batch, or one alone (a grey one may come as (h, w))
            X = self._images(X, width)
        elif images and X.ndim >= 2 and X.size == width and X.shape[0] != 1:
            X = X.reshape(1, width)  # one image
        elif images and X.ndim >= 3 and int(np.prod(X.shape[1:])) == width:
            X = X.reshape(len(X), width)  # images
        if X.ndim != 2 or X.shape[1] != width:
            raise BadInput(
                f"the input has shape {tuple(np.shape(values))}; this model takes rows of "
                f"{width} features (n, {width})"
                + (f", or images of {width} pixels" if images else "")
            )
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise BadInput(
                f"{len(rows)} input row(s) hold missing or infinite values (rows "
                f"{', '.join(map(str, rows[:10]))}{', ...' if len(rows) > 10 else ''}); this "
                "model's members were trained on complete numbers"
            )
        return X

    def _grey_image_of_any_size(self, X: np.ndarray) -> bool:
        """Whether ``X`` is one grey (h, w) image for a model that resizes grey images: two
        dimensions, not rows of its features, of more than one row and within four times the
        trained images' aspect ratio (rows of the wrong width, (3, 63), stay refused)."""
        shape = self.image_shape
        if shape is None or shape[-1] != 1 or not self.resizes_images or X.ndim != 2:
            return False
        if X.shape[1] == self.n_features or min(X.shape) < 2:
            return False
        ratio = (X.shape[0] / X.shape[1]) / (shape[0] / shape[1])
        return 0.25 <= ratio <= 4.0

    def _images(self, X: np.ndarray, width: int) -> np.ndarray:
        """Images in the trained shape, one (h, w, c) or a batch (n, h, w, c); (h, w) for
        grey ones too; flattened. Anything else is refused naming the shape (a batch of three
        grey images has as many values as one colour image: it is not one)."""
        shape = self.image_shape
        forms = {shape} | ({shape[:2]} if shape[-1] == 1 else set())
        if X.shape in forms:
            return X.reshape(1, width)
        if X.shape[1:] in forms:
            return X.reshape(len(X), width)
        batch = _image_batch(X, shape[-1]) if self.resizes_images else None
        if batch is not None:
            from models.pixels import resize

            # as the training images were read: 16-bit grey as floats, else as 8-bit images
            deep = self.pixel_range is not None and self.pixel_range[1] > 255
            resized = np.stack([resize(image, shape[:2], deep) for image in batch])
            return resized.reshape(len(batch), width)
        colours = {1: "grey", 3: "RGB", 4: "RGBA"}
        other_colours = X.shape[-3:-1] == shape[:2] or X.shape[-2:] == shape[:2]
        hint = (
            f": the training images were {colours.get(shape[-1], shape[-1])}, convert yours"
            if other_colours
            else ""
        )
        raise BadInput(
            f"the input has shape {X.shape}; this model takes images of shape {shape}"
            + (f" or {shape[:2]}" if shape[-1] == 1 else "")
            + (" (of any height and width: it resizes them)" if self.resizes_images else "")
            + f", one or a batch of them, or rows of {width} pixels{hint}"
        )

    def _check_scale(self, X: np.ndarray) -> None:
        """Warn when images come on another scale than the training ones (pixels in [0, 1]
        where the members learnt [0, 255], or the reverse): the members would answer
        confidently and wrongly."""
        if self.pixel_range is None or not X.size:
            return
        lo, hi = self.pixel_range
        span = hi - lo
        low, high = float(X.min()), float(X.max())
        shrunk = lo < high <= lo + span / 8  # all within the training range's lowest eighth
        beyond = high > hi + span or low < lo - span
        if span <= 0 or not (shrunk or beyond):
            return
        import warnings

        warnings.warn(
            f"the input's values lie in [{low:g}, {high:g}] but the members were trained on "
            f"images with pixels in [{lo:g}, {hi:g}]: scale the input as the training images "
            "were, or the predictions are meaningless",
            UserWarning,
            stacklevel=3,
        )

    def _table_rows(self, model_input) -> pd.DataFrame:
        """The rows as a DataFrame the members can read: one clear line when none of the
        columns the members were fitted on is there (others are ignored), a warning naming
        those that are missing (they are read as missing values)."""
        wanted = list(dict.fromkeys(n for m in self.members.values() for n in m.input_names))
        named = isinstance(model_input, pd.Series) and {str(i) for i in model_input.index} & {
            *wanted
        }
        if named:  # one row as a Series indexed by column names (frame.iloc[0])
            model_input = model_input.to_frame().T.infer_objects()
        if isinstance(model_input, (np.ndarray, pd.Series)):
            raise BadInput(
                f"{_NONE_KNOWN}; pass a pandas DataFrame with the columns {_names(wanted)}"
            )
        frame = model_input if isinstance(model_input, pd.DataFrame) else _frame(model_input)
        if not len(frame) and not len(frame.columns):  # an empty list of records
            return frame
        names = frame.columns.astype(str)
        twice = sorted(set(names[names.duplicated()]) & set(wanted))
        if twice:
            raise BadInput(
                f"the input names column(s) {_names(twice)} more than once; pass each column once"
            )
        have = set(names)
        missing = [n for n in wanted if n not in have]
        if wanted and len(missing) == len(wanted):
            raise BadInput(
                f"none of the {len(wanted)} columns the members were fitted on is in the input "
                f"(got {_names(frame.columns) or 'no columns'}); pass a pandas DataFrame with the "
                f"columns {_names(wanted)}"
            )  # a CSV of one row and no header: MLflow read the row as the header
        if not len(frame):  # no rows, under the right columns
            return frame
        if missing:
            import warnings

            # a near miss (Island for island, " sex"): said, not read, so a typo is not a value
            folded = {n.strip().lower(): n for n in set(names) - set(wanted)}
            near = [
                f"{folded[m.strip().lower()]!r} for {m!r}"
                for m in missing
                if m.strip().lower() in folded
            ]
            hint = f" (the input has {', '.join(near)}: names must match exactly)" if near else ""
            warnings.warn(
                f"the input lacks {len(missing)} column(s) the members were fitted on, read as "
                f"missing values: {_names(missing)}{hint}",
                UserWarning,
                stacklevel=3,
            )
        unread: dict[str, tuple[int, str]] = {}
        checked: set[tuple] = set()  # each column parsed once, not once per member
        for member in self.members.values():
            unread.update(member.unreadable(frame, checked))
        if unread:
            import warnings

            said = "; ".join(
                f"{name}: {count} cell(s) such as {example!r}"
                for name, (count, example) in unread.items()
            )
            warnings.warn(
                "cells that are not numbers or dates (or are infinite or past float32's range, "
                "or hold a decimal dot in a column written 17.027 for 17027: read such a file "
                "with decimal=',') where the members read them are read as missing values: "
                f"{said}",
                UserWarning,
                stacklevel=3,
            )
        return frame


_NONE_KNOWN = "a numpy array or a Series has no column names"


def _frame(rows) -> pd.DataFrame:
    """Rows in MLflow's other request formats as a DataFrame: a mapping of columns, or of
    one row's values (``{"inputs": {"a": 1.5}}``), or a list of records, their values as
    MLflow's JSON reader leaves them (0-d arrays)."""

    def plain(value):
        return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value

    if isinstance(rows, dict):
        rows = {k: plain(v) for k, v in rows.items()}
        if rows and all(np.ndim(v) == 0 for v in rows.values()):
            rows = [rows]  # one row
    elif isinstance(rows, list):
        rows = [{k: plain(v) for k, v in r.items()} if isinstance(r, dict) else r for r in rows]
    try:
        return pd.DataFrame(rows)
    except (TypeError, ValueError) as err:
        raise BadInput(f"cannot read the input as table rows ({err}); pass a DataFrame") from None


def _by_name(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """A frame's columns in the order the members read the features: by name when its
    columns are names (others ignored), by position when they are numbers (``0`` ..., or
    ``"0"`` ... as JSON gives them); one clear line when they are names but not the
    features' (a CSV request without a header row has its first row read as names), or name
    one twice."""
    from models.columns import ColumnMismatch, by_name

    try:
        return by_name(frame, names)
    except ColumnMismatch as err:
        if err.twice:
            raise BadInput(
                f"the input names column(s) {_names(err.twice)} more than once; pass each "
                "column once"
            ) from None
        missing = err.missing
        raise BadInput(
            f"the input's columns ({_names(frame.columns, 5)}) do not name this model's "
            f"features: {len(missing)} of its {len(names)} are missing ({_names(missing, 5)}); "
            f"pass the columns {_names(names, 10)} in any order, or numbers without names (a "
            "CSV request needs a header row)"
        ) from None


def _values_as_names(columns: pd.Index) -> bool:
    """Column names that are numbers but not positions (``0.1`` is how pandas renames a
    second ``0``, ``0.0.1`` a second ``0.0``): a row of values that a CSV reader took for the
    header."""
    if not all(isinstance(c, str) for c in columns):  # a reader's header is text: these
        return False  # are labels a user gave (0.0, 1.0 ...; repeated positions)
    labels = list(columns)
    if not all(_number_label(label) for label in labels):
        return False
    positions = all(label.isdigit() for label in labels) and len(set(labels)) == len(labels)
    return not positions


def _number_label(label: str) -> bool:
    """A number, or a repeated one as pandas renames it (the second 0.0 as 0.0.1, 1e-05 as
    1e-05.1)."""
    for text in (label, label.rpartition(".")[0] if label.rpartition(".")[2].isdigit() else ""):
        try:
            float(text)
        except ValueError:
            continue
        return True
    return False


def _names(columns, limit: int = 20) -> str:
    """Column names, comma-separated, cut after ``limit``."""
    names = [str(c) for c in columns]
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _image_batch(X: np.ndarray, channels: int) -> np.ndarray | None:
    """Images of any size as a batch (n, h, w, channels): a batch, one image, or (grey) a
    batch of (h, w) images, or one (h, w) (the caller has ruled out rows of the features);
    None for any other shape (other colours among them: a three-dimensional input ending in 3
    or 4 is one colour image)."""
    if X.ndim == 4:
        return X if X.shape[-1] == channels else None
    if X.ndim == 3 and X.shape[-1] in (3, 4):
        return X[None] if X.shape[-1] == channels else None
    if channels == 1 and X.ndim == 2:  # one grey image (h, w), not rows of the features
        return X[None, :, :, None]
    if channels != 1 or X.ndim != 3:
        return None
    return X[None] if X.shape[-1] == 1 else X[..., None]  # (h, w, 1) alone, or (n, h, w)


mlflow.models.set_model(EnsembleModel())


def _read_spec(path: Path, error: type[Exception]) -> dict:
    """The ensemble's spec, or ``error`` in one line when it is not one the runner wrote (an
    edited or truncated file: a KeyError from deep in loading said nothing of which)."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"refusing to load {path}: not readable JSON ({err})") from None
    task = spec.get("task") if isinstance(spec, dict) else None
    missing = [k for k in ("task", "names") if not isinstance(spec, dict) or k not in spec]
    if not missing and not (isinstance(task, dict) and {"kind", "n_classes"} <= set(task)):
        missing = ["task.kind", "task.n_classes"]
    if missing:
        raise error(
            f"refusing to load {path}: it lacks {', '.join(missing)} (the file changed after "
            "it was logged)"
        )
    return spec


# the libraries whose saved models an older release may not read
SAVED_WITH = (
    "scikit-learn",
    "keras",
    "tensorflow",
    "lightgbm",
    "xgboost",
    "catboost",
    "skops",
    "numpy",
    "pandas",
    "scipy",
)


def _older_than_saved(inside: Path) -> list[str]:
    """The libraries installed here at an older release than the model's requirements.txt
    pins (found above ``inside``, a file of the model), as "name 1.7.2 (saved with 1.9.1)"."""
    from importlib import metadata

    from packaging.version import InvalidVersion, Version

    folder = next((p for p in inside.parents if (p / "MLmodel").is_file()), None)
    if folder is None or not (folder / "requirements.txt").is_file():
        return []
    older = []
    for line in (folder / "requirements.txt").read_text().splitlines():
        name, sep, saved = line.strip().partition("==")
        if not sep or name.lower() not in SAVED_WITH:
            continue
        try:
            here = metadata.version(name)
            if Version(here) < Version(saved.strip()):
                older.append(f"{name} {here} (saved with {saved.strip()})")
        except (metadata.PackageNotFoundError, InvalidVersion):
            continue
    return older
