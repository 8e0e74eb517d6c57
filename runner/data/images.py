"""A user's own images: a folder with one subfolder of image files per class (as Keras'
``image_dataset_from_directory`` reads them), or a NumPy ``.npz`` archive of images and
labels. Pixels stay raw (uint8 values as float32), so a served model takes the same raw
images; read with Pillow, never with TensorFlow (the driver does not import it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from models.base import Task
from models.pixels import resize
from runner.data.types import DataSpec, Raw, one_line, resolve

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
IMAGE_KEYS = ("x", "X", "images", "x_train")  # the array names an .npz may hold them under
LABEL_KEYS = ("y", "labels", "y_train")


def load_images(spec: DataSpec) -> Raw:
    """``data.path``: a folder of class subfolders, or an ``.npz`` with images and labels."""
    if spec.path is None:
        raise ValueError(
            "images: data.path is required, got null; pass a folder with one subfolder of "
            "images per class, or an .npz holding x and y"
        )
    path = resolve(spec.path)
    if path.is_dir():
        images, labels, names, notes = _from_folder(path, spec.image_size)
    elif path.is_file() and path.suffix.lower() == ".npz":
        if spec.image_size is not None:
            raise ValueError(
                f"images: data.image_size resizes the image files of a folder; {path.name}'s "
                "arrays are used as they are (resize them before saving, or drop image_size)"
            )
        images, labels, names, notes = _from_npz(path)
    elif path.is_file():
        raise ValueError(
            f"images: data.path={spec.path!r} is a {path.suffix or 'suffix-less'} file; give a "
            "folder with one subfolder of images per class, or an .npz holding x and y"
        )
    else:
        raise ValueError(f"images: data.path={spec.path!r} does not exist (resolved to {path})")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"images: {path.name} holds images of shape {images.shape[1:]}; allowed: "
            "(height, width) or (height, width, channels) with 1, 3 or 4 channels"
        )
    if len(names) < 2:
        raise ValueError(f"images: {path.name} has {len(names)} class(es) {names}; need two")
    return Raw(
        X=images.reshape(len(images), -1).astype(np.float32),
        y=labels,
        task=Task("classification", n_classes=len(names), labels=tuple(names)),
        image_shape=tuple(int(d) for d in images.shape[1:]),
        notes=notes,
        resizes_images=path.is_dir() and spec.image_size is not None,
    )


def _from_folder(
    folder: Path, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray, list[str], tuple[str, ...]]:
    """Each subfolder a class (names sorted), each image file in it a row."""

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(
            f"images: {folder} has no subfolders; put each class's images in a subfolder "
            "named for the class"
        )
    labels: list[int] = []
    skipped = 0
    mode = "L"
    files = {c: _files(folder / c) for c in classes}
    for c in classes:
        if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in files[c]):
            raise ValueError(
                f"images: class folder {c!r} holds no images ({', '.join(IMAGE_SUFFIXES)})"
            )
    # first their headers (Pillow opens lazily): modes and sizes, no pixels held
    found: list[tuple[Path, int, str, tuple[int, int]]] = []  # file, class, mode, (h, w)
    for k, c in enumerate(classes):
        for f in files[c]:
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                skipped += 1
                continue
            with _opened(f) as image:
                found.append((f, k, image.mode, image.size[::-1]))
                if mode == "L" and _in_colour(image):
                    mode = "RGB"  # any colour image: every image in colour
    deep = [f for f, _, m, _ in found if _deep(m)]
    if deep and len(deep) < len(found):
        raise ValueError(
            f"images: {deep[0].name} has pixels deeper than 8 bits and other images 8-bit "
            "ones; save them all at one depth"
        )
    first_size = size or found[0][3]
    for f, _, _, shape in found:
        if size is None and shape != first_size:
            raise ValueError(
                f"images: {f.name} is {shape[0]}x{shape[1]}, {found[0][0].name} is "
                f"{first_size[0]}x{first_size[1]} (height x width); set "
                "data.image_size=[HEIGHT, WIDTH] to resize them all"
            )
    # then their pixels, one image at a time into the final array
    pixels = np.empty(
        (len(found), *first_size, *((3,) if mode == "RGB" else ())),
        dtype=np.float32 if deep else np.uint8,
    )
    for i, (f, k, _, _) in enumerate(found):
        with _opened(f) as image:
            # 16-bit or float grey keeps its raw values (converting to 8 bits clips them)
            read = np.asarray(image.convert("F" if deep else mode))
            if size is not None:
                read = resize(read.reshape(*read.shape[:2], -1), size, bool(deep))
            pixels[i] = read.reshape(pixels.shape[1:])
        labels.append(k)
    notes = (f"{skipped} file(s) in the class folders are not images: skipped",) if skipped else ()
    if mode == "RGB":
        notes += ("some images are in colour: every image is read as RGB",)
    return pixels, np.asarray(labels, dtype=np.int64), classes, notes


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    """A Pillow image of ``path``, or ValueError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            yield image
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"images: cannot read {path}: {one_line(err)}") from None


def _files(folder: Path) -> list[Path]:
    """Every file in a class folder and its subfolders (as Keras' loader reads them), hidden
    ones (``.DS_Store``, ``.ipynb_checkpoints/``) left out."""
    return sorted(
        f
        for f in folder.rglob("*")
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )


def _in_colour(image: Any) -> bool:
    """Whether an image holds colour: a palette of greys (a PNG saved with a palette) or grey
    with alpha does not."""
    if image.mode in ("L", "1", "LA") or _deep(image.mode):
        return False
    if image.mode in ("P", "PA"):
        rgb = np.asarray(image.convert("RGB"))
        return bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())
    return True


def _deep(mode: str) -> bool:
    """Whether a Pillow mode holds grey pixels deeper than 8 bits (16- or 32-bit, float)."""
    return mode.startswith("I") or mode == "F"


def _from_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], tuple[str, ...]]:
    """Images under x (or X, images, x_train), labels under y (or labels, y_train): class ids
    or names, classes in sorted order."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"images: cannot read {path}: {one_line(err)}") from None
    x_key = next((k for k in IMAGE_KEYS if k in arrays), None)
    y_key = next((k for k in LABEL_KEYS if k in arrays), None)
    if x_key is None or y_key is None:
        raise ValueError(
            f"images: {path.name} holds {sorted(arrays)}; it needs the images under one of "
            f"{list(IMAGE_KEYS)} and the labels under one of {list(LABEL_KEYS)}"
        )
    images, y = arrays[x_key], arrays[y_key].reshape(-1)
    if len(images) != len(y):
        raise ValueError(f"images: {path.name} has {len(images)} images and {len(y)} labels")
    if images.dtype.kind not in "uif" or not np.all(np.isfinite(images)):
        raise ValueError(
            f"images: {path.name}'s {x_key} must be finite numbers, got {images.dtype}"
        )
    names, labels = np.unique(y, return_inverse=True)
    return images, labels.astype(np.int64), [str(n) for n in names], ()
