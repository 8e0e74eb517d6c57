"""Loaders for the built-in datasets: scikit-learn's digits, Fashion-MNIST from its IDX files
(or Keras' cache) and California housing (StatLib's file or scikit-learn's data home). None
downloads anything, and none imports TensorFlow."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from models.base import Task
from runner.data.types import DataSpec, Raw, one_line, resolve


def load_digits(spec: DataSpec) -> Raw:
    """scikit-learn's 8x8 digits (ships inside scikit-learn)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Raw(
        X=bunch.data.astype(np.float32),
        y=bunch.target.astype(np.int64),
        task=Task("classification", n_classes=10, labels=tuple(str(d) for d in range(10))),
        image_shape=(8, 8, 1),
        feature_names=tuple(bunch.feature_names),
    )


# ---------------------------------------------------------------------------- Fashion-MNIST

FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# what Fashion-MNIST's labels 0-9 stand for (its README)
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IDX_UBYTE = 0x08  # IDX type code of unsigned bytes, the only one Fashion-MNIST uses


def keras_fashion_dirs() -> list[Path]:
    """Where ``keras.datasets.fashion_mnist.load_data()`` caches its files, as Keras decides.

    ``$KERAS_HOME`` (default ``~/.keras``, or ``/tmp/.keras`` when home is not writable), and
    ``/tmp/.keras`` too when that base is not writable (Keras' ``get_file`` falls back there).
    """
    if "KERAS_HOME" in os.environ:
        base = Path(os.environ["KERAS_HOME"]).expanduser()
    else:
        home = Path("~").expanduser()
        base = (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"
    bases = [base]
    if not os.access(base, os.W_OK) and base != Path("/tmp/.keras"):
        bases.append(Path("/tmp/.keras"))
    return [b / "datasets" / "fashion-mnist" for b in bases]


def read_idx(path: Path) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes as a uint8 array of the shape its header gives."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"cannot read IDX file {path}: {one_line(err)}") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != IDX_UBYTE or data[3] == 0:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (header {data[:4]!r})")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise ValueError(f"{path} is truncated: its IDX header promises {ndim} dimensions")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    values = np.frombuffer(data, np.uint8, offset=offset)
    if values.size != int(np.prod(dims)):
        raise ValueError(f"{path} holds {values.size} values, its header says {dims}")
    return values.reshape(dims)


def _fashion_folder(spec: DataSpec) -> Path:
    """The folder holding the four Fashion-MNIST files: ``spec.path`` or Keras' cache."""
    tried = [resolve(spec.path)] if spec.path is not None else keras_fashion_dirs()
    for folder in tried:
        if all((folder / f).is_file() for f in FASHION_FILES.values()):
            return folder
    where = ", ".join(str(f) for f in tried)
    got = f"data.path={spec.path!r}" if spec.path is not None else "data.path=null"
    raise ValueError(
        f"fashion_mnist: the four IDX files ({', '.join(FASHION_FILES.values())}) are not in "
        f"{where} ({got}); pass data.path=FOLDER holding them "
        "(this loader does not download)"
    )


def load_fashion_mnist(spec: DataSpec) -> Raw:
    """Fashion-MNIST from its IDX files: 60k train + the official 10k test, 28x28 grey."""
    folder = _fashion_folder(spec)
    arrays = {key: read_idx(folder / name) for key, name in FASHION_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise ValueError(
                f"fashion_mnist: {part} images {images.shape} and labels {labels.shape} in "
                f"{folder} are not (n, 28, 28) and (n,)"
            )
        if labels.size and labels.max() > 9:
            raise ValueError(f"fashion_mnist: {part} labels in {folder} go above 9")
    return Raw(
        X=arrays["train_images"].reshape(-1, 784).astype(np.float32),
        y=arrays["train_labels"].astype(np.int64),
        task=Task("classification", n_classes=10, labels=FASHION_CLASSES),
        image_shape=(28, 28, 1),
        feature_names=tuple(f"pixel_{r}_{c}" for r in range(28) for c in range(28)),
        X_test=arrays["test_images"].reshape(-1, 784).astype(np.float32),
        y_test=arrays["test_labels"].astype(np.int64),
    )


# ----------------------------------------------------------------------- California housing

CALIFORNIA_FEATURES = (
    "MedInc",
    "HouseAge",
    "AveRooms",
    "AveBedrms",
    "Population",
    "AveOccup",
    "Latitude",
    "Longitude",
)
CALIFORNIA_FILE = "cal_housing.data"
# StatLib's column order (longitude, latitude, housingMedianAge, totalRooms, totalBedrooms,
# population, households, medianIncome, medianHouseValue) -> scikit-learn's cached order
CALIFORNIA_COLUMNS = [8, 7, 2, 3, 4, 5, 6, 1, 0]


def california_from_statlib(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's float64 X, y computed from StatLib's raw ``cal_housing.data``."""
    try:
        table = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as err:
        raise ValueError(f"california_housing: cannot read {path}: {one_line(err)}") from None
    if table.shape[1] != 9:
        raise ValueError(
            f"california_housing: {path} has {table.shape[1]} columns, expected the 9 of "
            f"StatLib's {CALIFORNIA_FILE}"
        )
    # the same operations, in the same order, as sklearn.datasets.fetch_california_housing
    table = table[:, CALIFORNIA_COLUMNS]
    target, data = table[:, 0], table[:, 1:]
    data[:, 2] /= data[:, 5]  # AveRooms = totalRooms / households
    data[:, 3] /= data[:, 5]  # AveBedrms = totalBedrooms / households
    data[:, 5] = data[:, 4] / data[:, 5]  # AveOccup = population / households
    return data, target / 100000.0  # MedHouseVal in units of $100,000


def load_california_housing(spec: DataSpec) -> Raw:
    """California housing as scikit-learn's ``fetch_california_housing`` gives it; regression.

    ``data.path`` may be StatLib's ``cal_housing.data`` or a folder holding it (computed from
    the raw file, nothing cached); a folder without it is used as scikit-learn's ``data_home``.
    Without a path scikit-learn's default data home is read. Nothing is downloaded.
    """
    path = resolve(spec.path) if spec.path is not None else None
    if path is not None and path.is_dir() and (path / CALIFORNIA_FILE).is_file():
        path = path / CALIFORNIA_FILE
    if path is not None and path.is_file():
        X, y = california_from_statlib(path)
    elif path is not None and not path.exists():
        raise ValueError(
            f"california_housing: data.path={spec.path!r} does not exist (resolved to {path}); "
            f"pass data.path=.../{CALIFORNIA_FILE}"
        )
    else:
        from sklearn.datasets import fetch_california_housing, get_data_home

        data_home = None if path is None else str(path)
        try:
            X, y = fetch_california_housing(
                data_home=data_home, download_if_missing=False, return_X_y=True
            )
        except Exception as err:  # any failure means: not usable offline
            raise ValueError(
                f"california_housing: not in scikit-learn's data home "
                f"{get_data_home(data_home)} ({one_line(err)}); "
                f"pass data.path=.../{CALIFORNIA_FILE} (the StatLib file)"
            ) from None
    return Raw(
        X=np.asarray(X, dtype=np.float32),
        y=np.asarray(y, dtype=np.float64),
        task=Task("regression"),
        feature_names=CALIFORNIA_FEATURES,
    )
