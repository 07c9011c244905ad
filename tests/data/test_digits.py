"""The shipped digits: scikit-learn's copy value for value, split as the default recipe expects."""
import hashlib

import numpy as np
import pytest

from reslab.data.digits import digits_arrays, load_digits_split


def test_shipped_digits_are_the_uci_test_set():
    images, labels = digits_arrays()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # the content of scikit-learn's load_digits() (images as uint8, targets as int64), recorded when it was shipped:
    # CI has no scikit-learn, so this is what keeps the shipped copy from drifting
    digest = hashlib.sha256(images.tobytes() + labels.astype(np.int64).tobytes()).hexdigest()
    assert digest == "65e5b4619795efb40c1082f4c350c049e4ad552200d369b6ae99e21eef5e72c5"
    tr, te = load_digits_split("train"), load_digits_split("test")
    assert tr[0].shape == (1438, 3, 16, 16) and te[0].shape == (359, 3, 16, 16)


def test_identical_to_scikit_learns_copy():
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is not installed (no longer needed)")
    d = datasets.load_digits()
    images, labels = digits_arrays()
    assert np.array_equal(images, d.images) and np.array_equal(labels, d.target)
