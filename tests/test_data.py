"""Dataset loading and splitting: seeded, stratified, fingerprinted."""

from __future__ import annotations

import numpy as np
import pytest

from runner.data import LOADERS, load
from runner.spec import DataSpec


def test_digits_split_sizes_and_disjointness():
    d = load(DataSpec("digits", 0.2, 0.2, 0))
    sizes = d.sizes()
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == pytest.approx(0.2 * 1797, abs=1)
    assert sizes["val"] == pytest.approx(0.2 * 1797, abs=1)
    rows = {s: {r.tobytes() for r in X} for s, X in (("tr", d.X_train), ("te", d.X_test))}
    # digits has a few duplicate images; the splits share no more than those
    assert len(rows["tr"] & rows["te"]) < 5
    assert d.input_spec.image_shape == (8, 8, 1) and d.task.n_classes == 10


def test_split_is_stratified():
    d = load(DataSpec("digits", 0.2, 0.2, 0))
    train = np.bincount(d.y_train) / len(d.y_train)
    test = np.bincount(d.y_test) / len(d.y_test)
    assert np.abs(train - test).max() < 0.01


def test_same_seed_same_fingerprint_other_seed_other_fingerprint():
    a, b, c = (
        load(DataSpec("digits", 0.2, 0.2, 0)),
        load(DataSpec("digits", 0.2, 0.2, 0)),
        load(DataSpec("digits", 0.2, 0.2, 1)),
    )
    assert a.fingerprint == b.fingerprint != c.fingerprint
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert load(DataSpec("digits", 0.25, 0.2, 0)).fingerprint != a.fingerprint


def test_constant_features_keep_unit_scale():
    d = load(DataSpec("digits", 0.2, 0.2, 0))
    constant = d.X_train.var(axis=0) == 0
    assert constant.any()  # digits has always-blank border pixels
    assert np.all(d.input_spec.variance[constant] == 1.0)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist3d'; known: digits"):
        load(DataSpec("mnist3d"))
    assert "digits" in LOADERS
