"""bmm.own_data: a user's own 0/1 data (.npy or Parquet), and one line for each bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bmm import own_data
from bmm.datasets import DataSetError, OwnSet

RNG = np.random.default_rng(5)
X = RNG.random((30, 12)) < 0.3


def own(tmp_path, data=X, labels=None, image_shape=None, suffix=".npy", **kw):
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, data)
    else:
        pd.DataFrame(data, columns=[f"p{j}" for j in range(data.shape[1])]).to_parquet(path)
    label_path = None
    if labels is not None:
        label_path = tmp_path / "y.npy"
        np.save(label_path, labels)
    return OwnSet("mine", str(path), label_path and str(label_path), image_shape, **kw)


@pytest.mark.parametrize("kind", ["bool", "uint8", "float32", "parquet-int", "parquet-bool"])
def test_own_data_of_every_kind_load_as_bool(tmp_path, kind):
    dtype = {"uint8": np.uint8, "float32": np.float32}.get(kind, bool)
    suffix = ".parquet" if kind.startswith("parquet") else ".npy"
    if kind == "parquet-int":
        dtype = np.int64
    s = own(tmp_path, X.astype(dtype), suffix=suffix)
    assert own_data.inspect(s) == (30, 12)
    data, labels, names = own_data.load(s)
    assert data.dtype == bool
    np.testing.assert_array_equal(data, X)
    assert labels is None and names is None


def test_labels_numbers_or_text(tmp_path):
    s = own(tmp_path, labels=np.arange(30) % 3, image_shape=(3, 4))
    _, labels, names = own_data.load(s)
    np.testing.assert_array_equal(labels, np.arange(30) % 3)
    assert names is None
    s = own(tmp_path, labels=np.array(["cat", "dog", "ant"] * 10))
    _, labels, names = own_data.load(s)
    assert names == ["ant", "cat", "dog"]
    np.testing.assert_array_equal(labels[:3], [1, 2, 0])


def error(s) -> str:
    with pytest.raises(DataSetError) as info:
        own_data.load(s)
    message = str(info.value)
    assert "\n" not in message and message.startswith("datasets.mine.")  # one line, the set
    return message


def test_a_missing_file_is_named_with_the_fix(tmp_path):
    s = OwnSet("mine", str(tmp_path / "gone.npy"))
    message = error(s)
    assert f"datasets.mine.path: {tmp_path / 'gone.npy'} does not exist" in message
    assert "give the path of an existing file" in message
    assert "neither .npy nor .parquet" in error(OwnSet("mine", str(tmp_path / "x.csv")))


def test_values_other_than_0_and_1_are_named_with_where_and_the_fix(tmp_path):
    data = X.astype(np.float64)
    data[4, 7] = 0.5
    data[9, 1] = 2
    message = error(own(tmp_path, data))
    assert "holds values other than 0 and 1 (0.5 at row 4, column 7, and 1 more)" in message
    assert "binarise the data first" in message
    data = X.astype(np.uint8)
    data[2, 3] = 255
    message = error(own(tmp_path, data, suffix=".parquet"))
    assert "255 at row 2, column 'p3'" in message


def test_a_text_column_is_refused(tmp_path):
    path = tmp_path / "x.parquet"
    pd.DataFrame({"a": [0, 1], "b": ["x", "y"]}).to_parquet(path)
    assert "column 'b' of" in error(OwnSet("mine", str(path), test_fraction=0.5))


def test_the_wrong_shape_is_named_with_the_fix(tmp_path):
    message = error(own(tmp_path, X.reshape(30, 3, 4)))
    assert "holds an array of shape (30, 3, 4); expected N×D" in message
    assert "X.reshape(len(X), -1)" in message


def test_a_label_count_other_than_the_rows_is_named(tmp_path):
    message = error(own(tmp_path, labels=np.zeros(29, int)))
    assert message.startswith("datasets.mine.labels: ")
    assert "holds 29 labels but" in message and "holds 30 rows" in message


def test_an_image_shape_that_does_not_hold_D_pixels_is_named(tmp_path):
    message = error(own(tmp_path, image_shape=(5, 5)))
    assert message.startswith("datasets.mine.image_shape: [5, 5] holds 25 pixels but")
    assert "D = 12 columns; give a shape whose product is 12" in message


def test_too_few_rows_for_a_test_split(tmp_path):
    message = error(own(tmp_path, X[:2], test_fraction=0.1))
    assert message.startswith("datasets.mine.test_fraction: 0.1 of the 2 rows")


def test_the_split_holds_out_a_stratified_test_fraction():
    labels = np.repeat([0, 1], [80, 20])
    rows = own_data.split(100, labels, 0.2, seed=3)
    assert len(rows["test"]) == 20 and len(rows["train"]) == 80
    assert np.bincount(labels[rows["test"]]).tolist() == [16, 4]
    assert sorted([*rows["train"], *rows["test"]]) == list(range(100))
    again = own_data.split(100, labels, 0.2, seed=3)
    np.testing.assert_array_equal(again["test"], rows["test"])
    assert len(own_data.split(7, None, 0.3, seed=0)["test"]) == 2
