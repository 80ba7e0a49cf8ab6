"""ImageData refuses labels outside the classes and non-finite images, naming the example."""

import numpy as np
import pytest

from iekd_keras.data import ImageData

pytestmark = pytest.mark.backend_agnostic


def test_labels_out_of_range():
    images = np.zeros((4, 4, 4, 1), "float32")
    with pytest.raises(
        ValueError,
        match=r"'bad' train label 12 \(example 2\) is out of range "
        "for 10 classes; expected 0 to 9",
    ):
        ImageData("bad", images, np.array([0, 1, 12, 3]), images, np.zeros(4), 10, (0.5,), (0.2,))


def test_non_finite_inputs():
    images = np.zeros((4, 4, 4, 1), "float32")
    broken = images.copy()
    broken[1, 0, 0, 0] = np.nan
    with pytest.raises(
        ValueError,
        match=r"'bad' test images hold non-finite values \(first at "
        "example 1\\)",
    ):
        ImageData("bad", images, np.zeros(4), broken, np.zeros(4), 10, (0.5,), (0.2,))
