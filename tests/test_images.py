"""A user's own images (data=images): a folder of class subfolders or an .npz, read raw;
a sweep on them serves raw images in a fresh process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_spec import spec_of

from helpers import read_summary, run_cli, serve_elsewhere
from runner.data import DataSpec, load
from runner.spec import SpecError

NAMES = ("zero", "one", "two")


def image_folder(root: Path, colour_one: bool = False, per_class: int = 60, scale: int = 1) -> Path:
    """Digits 0-2 as 8x8 grey PNGs (``scale`` times larger) in one subfolder per class (one
    of them RGB if asked), and a stray text file."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = root / "pics"
    for k, name in enumerate(NAMES):
        (folder / name).mkdir(parents=True)
        rows = np.flatnonzero(digits.target == k)[:per_class]
        for i in rows:
            pixels = (digits.images[i] * 16).clip(0, 255).astype(np.uint8)
            pixels = np.kron(pixels, np.ones((scale, scale), dtype=np.uint8))
            image = Image.fromarray(pixels, mode="L")
            if colour_one and i == rows[0]:
                image = image.convert("RGB")
            image.save(folder / name / f"{i}.png")
    (folder / "one" / "notes.txt").write_text("not an image")
    (folder / "two" / ".DS_Store").write_bytes(b"\0\0")  # hidden: left out, not counted
    return folder


def images_spec(path: Path, **extra) -> DataSpec:
    return DataSpec("images", 0.2, 0.2, 0, path=str(path), **extra)


def test_a_folder_of_class_subfolders_loads_raw_grey_pixels(tmp_path):
    data = load(images_spec(image_folder(tmp_path)))
    assert data.task.labels == tuple(sorted(NAMES)) and data.task.n_classes == 3
    assert data.input_spec.image_shape == (8, 8, 1)
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 180
    assert data.X_train.max() > 200 and data.X_train.dtype == np.float32  # raw 0-255
    assert "1 file(s) in the class folders are not images: skipped" in data.notes
    nested = tmp_path / "pics" / "two" / "more"  # a class's own subfolder is read too
    nested.mkdir()
    Image.new("L", (8, 8)).save(nested / "extra.png")
    assert len(load(images_spec(tmp_path / "pics")).y_test) == 37  # 20% of 181
    # grey saved with a palette, or with alpha, is still grey
    Image.new("L", (8, 8), 90).convert("P").save(nested / "palette.png")
    Image.new("LA", (8, 8)).save(nested / "alpha.png")
    assert load(images_spec(tmp_path / "pics")).input_spec.image_shape == (8, 8, 1)
    (nested / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match=r"^images: cannot read .*broken.png: "):
        load(images_spec(tmp_path / "pics"))


def test_a_class_of_too_few_images_is_named_before_any_split(tmp_path):
    folder = image_folder(tmp_path, per_class=10)
    for extra in sorted((folder / "two").glob("*.png"))[2:]:
        extra.unlink()
    with pytest.raises(ValueError, match=r"^images: class 'two' has 2 example\(s\); every "):
        load(images_spec(folder))


def test_one_colour_image_makes_every_image_rgb_and_sizes_must_agree(tmp_path):
    folder = image_folder(tmp_path, colour_one=True)
    data = load(images_spec(folder))
    assert data.input_spec.image_shape == (8, 8, 3)
    assert "some images are in colour: every image is read as RGB" in data.notes
    Image.new("L", (10, 12)).save(folder / "two" / "big.png")
    with pytest.raises(ValueError, match=r"big.png is 12x10, .* set data.image_size="):
        load(images_spec(folder))
    resized = load(images_spec(folder, image_size=(6, 5)))
    assert resized.input_spec.image_shape == (6, 5, 3)


def test_an_npz_of_images_and_named_labels_loads(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(90, 6, 6), dtype=np.uint8)
    y = np.array(["cat", "dog", "bird"])[np.arange(90) % 3]
    np.savez(tmp_path / "pets.npz", x=x, y=y)
    data = load(images_spec(tmp_path / "pets.npz"))
    assert data.task.labels == ("bird", "cat", "dog") and data.input_spec.image_shape == (6, 6, 1)
    np.savez(tmp_path / "bad.npz", pixels=x, y=y)
    with pytest.raises(ValueError, match=r"bad.npz holds \['pixels', 'y'\]; it needs the images"):
        load(images_spec(tmp_path / "bad.npz"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda root: (root / "empty").mkdir() or root / "empty",
            r"has no subfolders; put each class's images in a subfolder",
        ),
        (
            lambda root: (root / "d" / "a").mkdir(parents=True) or root / "d",
            r"class folder 'a' holds no images",
        ),
        (lambda root: root / "nope", r"does not exist"),
        (
            lambda root: (
                Path(np.savez(root / "x.npy.npz", x=np.zeros((4, 3, 3)), y=[0] * 4) or root)
                / "x.npy.npz"
            ),
            r"has 1 class\(es\) \['0'\]; need two",
        ),
        (lambda root: (root / "t.csv").write_text("a\n1\n") and root / "t.csv", r"is a .csv file"),
    ],
)
def test_a_folder_or_file_that_is_not_a_set_of_images_is_one_clear_error(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        load(images_spec(make(tmp_path)))


@pytest.mark.parametrize("bad", ["[0, 8]", "[8]", "'8x8'", "[8.5, 8]"])
def test_a_bad_image_size_is_refused_naming_it(bad):
    with pytest.raises(SpecError, match=r"^data.image_size: must be \[HEIGHT, WIDTH\] in pixels"):
        spec_of("data=images", "data.path=/tmp", f"data.image_size={bad}")


SERVE = """
import json, sys, mlflow, numpy as np
from pathlib import Path
from PIL import Image
files = sorted(Path(sys.argv[2]).glob("*/*.png"))[::7]
images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])  # (n, 16, 16, 3)
small = np.stack([np.asarray(Image.open(f).convert("RGB").resize((8, 8), Image.BILINEAR))
                  for f in files])  # as data.image_size=[8, 8] resized the training images
model = mlflow.pyfunc.load_model(sys.argv[1])
named = model.predict(images, params={"output": "labels"})
same = np.allclose(model.predict(images), model.predict(small), atol=1e-6)
one = model.predict(images[0], params={"output": "labels"})
try:  # three grey images hold as many values as one colour image: refused, not one image
    model.predict(small[:3, :, :, 0])
    grey = "answered"
except Exception as err:
    grey = str(err)
print(json.dumps({"truth": [f.parent.name for f in files], "named": list(named),
                  "one": list(one), "grey": grey, "same": bool(same)}))
"""


@pytest.mark.slow
def test_a_sweep_on_a_folder_of_images_serves_raw_images_elsewhere(tmp_path):
    folder = image_folder(tmp_path, colour_one=True, scale=2)  # every image read as RGB
    db = f"sqlite:///{tmp_path}/mlflow.db"
    done = run_cli(
        tmp_path,
        "+experiment=quickstart",
        "data=images",
        f"data.path={folder}",
        "data.image_size=[8,8]",
        "training.epochs=3",
        "~members.resnet",
        "~members.selu",
        "~members.mlp",
        f"tracking.uri={db}",
        "hydra.run.dir=out",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = read_summary(tmp_path / "out")
    assert {m["name"] for m in summary["members"]} == {"logistic", "svm", "convnet"}
    served = serve_elsewhere(tmp_path, db, SERVE, summary["ensemble"]["model_uri"], str(folder))
    assert served.returncode == 0, served.stderr[-3000:]
    out = json.loads(served.stdout.strip().splitlines()[-1])
    right = np.mean([a == b for a, b in zip(out["truth"], out["named"], strict=True)])
    assert len(out["named"]) == 26 and right > 0.9  # class names, as the folders are named
    assert out["one"] == out["named"][:1]
    assert out["same"]  # raw 16x16 images resized as the training images were
    assert (
        "the input has shape (3, 8, 8); this model takes images of shape (8, 8, 3)" in (out["grey"])
    ), out["grey"]
    assert out["grey"].endswith("the training images were RGB, convert yours")


def test_sixteen_bit_grey_images_keep_their_values_and_an_npz_is_not_resized(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        (tmp_path / "deep" / name).mkdir(parents=True)
        for i in range(20):
            pixels = rng.integers(0, 60000, size=(5, 5)).astype(np.uint16)
            Image.fromarray(pixels).save(tmp_path / "deep" / name / f"{i}.png")
    data = load(images_spec(tmp_path / "deep"))
    assert data.input_spec.image_shape == (5, 5, 1) and data.X_train.max() > 1000  # not 255
    Image.new("L", (5, 5)).save(tmp_path / "deep" / "a" / "flat.png")
    with pytest.raises(ValueError, match="pixels deeper than 8 bits and other images 8-bit"):
        load(images_spec(tmp_path / "deep"))
    np.savez(tmp_path / "p.npz", x=np.zeros((30, 4, 4)), y=np.arange(30) % 2)
    with pytest.raises(ValueError, match=r"data.image_size resizes the image files of a folder"):
        load(images_spec(tmp_path / "p.npz", image_size=(2, 2)))


def test_a_resizing_model_reads_grey_images_of_any_size_and_refuses_colour_ones():
    from models.bag import Bag
    from models.member import Member
    from models.pixels import resize
    from runner.pyfunc_model import _image_batch

    rng = np.random.default_rng(0)
    deep = rng.integers(0, 60000, size=(2, 10, 6)).astype(np.float32)  # two grey, 16-bit
    batch = _image_batch(deep, 1)
    assert batch.shape == (2, 10, 6, 1)
    assert _image_batch(np.zeros((10, 6, 1)), 1).shape == (1, 10, 6, 1)
    # one grey (h, w) image (the served model has ruled out rows of its features)
    assert _image_batch(deep[0], 1).shape == (1, 10, 6, 1)
    assert _image_batch(np.zeros((10, 6, 3)), 1) is None  # colour for a grey model
    assert _image_batch(np.zeros((2, 10, 6, 3)), 3).shape == (2, 10, 6, 3)
    assert _image_batch(np.zeros((2, 10, 6)), 3) is None  # grey for a colour model
    out = resize(batch[1], (5, 3), deep=True)
    expected = Image.fromarray(deep[1]).resize((3, 5), Image.Resampling.BILINEAR)
    np.testing.assert_allclose(out[..., 0], np.asarray(expected))
    assert out.max() > 255  # not squeezed into 8 bits
    eight = rng.integers(0, 256, size=(10, 6, 3)).astype(np.uint8)
    expected = Image.fromarray(eight).resize((3, 5), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(resize(eight, (5, 3), deep=False), np.asarray(expected))
    # a bagged member (runner.folds) resizes as its fold models do
    fold = Member(None, None, image_shape=(5, 3, 1), resizes_images=True)
    assert Bag([fold, fold]).resizes_images


def test_a_model_resizing_grey_images_takes_one_of_any_size_as_two_dimensions():
    """One grey 20x20 image was refused as rows of 20 features by a model that resizes."""
    from runner.pyfunc_model import BadInput, EnsembleModel

    model = EnsembleModel()
    model.image_shape, model.n_features, model.resizes_images = (8, 8, 1), 64, True
    model.pixel_range, model.feature_names = (0.0, 255.0), None
    image = np.tile(np.linspace(0, 255, 20), (20, 1))
    one = model._feature_rows(image)
    assert one.shape == (1, 64)
    np.testing.assert_allclose(one, model._feature_rows(image[None]))  # as a batch of one
    assert model._feature_rows(np.zeros((3, 64))).shape == (3, 64)  # rows of its features
    for rows in (np.zeros((3, 63)), np.zeros((1, 65)), pd.DataFrame(np.zeros((5, 784)))):
        with pytest.raises(BadInput, match=r"this model takes rows of 64 features"):
            model._feature_rows(rows)  # rows of the wrong width, not an image
    assert model._feature_rows(np.zeros((0, 64))).shape == (0, 64)  # no rows in, none out
    with pytest.raises(BadInput, match=r"the input has 3 row\(s\) but no values; this model"):
        model._feature_rows(pd.DataFrame(index=range(3)))  # records without fields
    model.resizes_images = False  # a model of one size: two dimensions are rows
    with pytest.raises(BadInput, match=r"the input has shape \(20, 20\); this model takes rows"):
        model._feature_rows(image)
