"""The shipped digits: scikit-learn's copy value for value, split as the default recipe expects."""
import numpy as np
import pytest

from reslab.data.digits import digits_arrays, load_digits_split


def test_shipped_digits_are_the_uci_test_set():
    images, labels = digits_arrays()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    tr, te = load_digits_split("train"), load_digits_split("test")
    assert tr[0].shape == (1438, 3, 16, 16) and te[0].shape == (359, 3, 16, 16)


def test_identical_to_scikit_learns_copy():
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is not installed (no longer needed)")
    d = datasets.load_digits()
    images, labels = digits_arrays()
    assert np.array_equal(images, d.images) and np.array_equal(labels, d.target)
