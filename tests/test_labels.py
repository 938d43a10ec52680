"""skact's rule for unlabeled rows: missing labels and -1, as a number or as text."""

import warnings

import numpy as np
import pandas as pd
import pytest

from skact._labels import (
    AmbiguousMinusOneWarning,
    labeled_mask,
    minus_one_problem,
    semi_supervised_target,
    warn_if_minus_one_ambiguous,
)


@pytest.mark.parametrize(
    ("labels", "labeled"),
    [
        ([3, -1, 0], [1, 0, 1]),
        (np.array([1.0, np.nan, -1.0, 2.5]), [1, 0, 0, 1]),
        (np.array([0, 1, 255], dtype=np.uint8), [1, 1, 1]),
        (
            np.array(["a", None, np.nan, -1, -1.0, pd.NA, pd.NaT, "b", 0], dtype=object),
            [1, 0, 0, 0, 0, 0, 0, 1, 1],
        ),
        # Text as numpy and CSV files make it: the number it spells.
        (np.array(["cat", -1]), [1, 0]),
        (np.array(["cat", np.nan]), [1, 0]),  # the text "nan"
        (
            np.array(["-1", " -1 ", "-1.0", "", "  ", "1", "-10", "None"]),
            [0, 0, 0, 0, 0, 1, 1, 1],
        ),
        (np.array([b"-1", b"x", b""]), [0, 1, 0]),
        (np.array(["a", "-1", ""], dtype=object), [1, 0, 0]),
        # pandas' own missing values and dtypes.
        (pd.array([1, None, -1], dtype="Int64"), [1, 0, 0]),
        (pd.Series(["a", None, "-1"], dtype="string"), [1, 0, 0]),
        (pd.Categorical(["a", None, "-1"]), [1, 0, 0]),
        (pd.Series([1.0, None, -1.0]), [1, 0, 0]),
    ],
    ids=[
        "int",
        "float",
        "uint",
        "object",
        "numpy-text-minus-one",
        "numpy-text-nan",
        "text",
        "bytes",
        "object-text",
        "pandas-Int64",
        "pandas-string",
        "pandas-categorical",
        "pandas-float",
    ],
)
def test_missing_labels_and_minus_one_mark_unlabeled_rows(labels, labeled):
    assert labeled_mask(labels).tolist() == [bool(v) for v in labeled]


def test_minus_one_as_a_class_leaves_only_missing_labels_unlabeled():
    labels = np.array(["-1", "cat", "", "-1.0", "nan"])
    assert labeled_mask(labels, minus_one="class").tolist() == [1, 1, 0, 1, 0]
    assert labeled_mask([-1, 0, np.nan], minus_one="class").tolist() == [1, 1, 0]
    y, labeled = semi_supervised_target(
        np.array([-1, 2, None], dtype=object), minus_one="class"
    )
    assert labeled.tolist() == [True, True, False] and y.dtype == object
    with pytest.raises(ValueError, match=r"minus_one must be one of \('unlabeled', "):
        labeled_mask([1], minus_one="blank")


def test_semi_supervised_target_gives_numbers_with_minus_one_unlabeled():
    y, labeled = semi_supervised_target(np.array([2, None, -1, 0], dtype=object))
    assert y.tolist() == [2, -1, -1, 0] and y.dtype.kind == "i"
    assert labeled.tolist() == [True, False, False, True]
    text, labeled = semi_supervised_target(np.array(["a", "-1", ""]))
    assert text.tolist() == ["a", "-1", ""] and labeled.tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("labels", "minus_one", "expected"),
    [
        # -1 read as unlabeled, looking like a class.
        ([1, -1, 1, -1], "unlabeled", "every other label is 1: this looks like a -1/+1"),
        (["1", "-1", "1.0"], "unlabeled", "every other label is 1"),
        ([-2, -1, 0, 1], "unlabeled", "other labels are negative too (-2)"),
        # -1 read as a class, looking like the mark of unlabeled rows.
        (
            [0, 1] + [-1] * 2,
            "class",
            "2 of the 4 labels are -1, read as a class, while "
            "the other labels are non-negative integers",
        ),
        (["cat", "dog"] + ["-1"] * 3, "class", "other labels are text"),
    ],
)
def test_minus_one_that_looks_like_the_other_meaning_is_a_problem(
    labels, minus_one, expected
):
    problem = minus_one_problem(labels, minus_one=minus_one)
    assert problem is not None and expected in problem


@pytest.mark.parametrize(
    ("labels", "minus_one"),
    [
        ([0, 1, 2] + [-1] * 7, "unlabeled"),  # the semi-supervised convention itself
        (["cat", "dog", "-1", "-1"], "unlabeled"),
        ([-1, -1, np.nan], "unlabeled"),  # no other label to judge by
        ([0, 1, 2, -1], "class"),  # -1 a class among others, not most rows
        ([1, -1, 1, -1], "class"),  # a -1/+1 target, read as one
        ([-2, -1, -1, 0], "class"),  # other negative classes
        ([0.5, -1, -1], "class"),  # not classes of whole numbers
    ],
)
def test_minus_one_that_fits_its_meaning_is_no_problem(labels, minus_one):
    assert minus_one_problem(labels, minus_one=minus_one) is None


def test_the_warning_names_the_labels_and_says_what_to_do():
    with pytest.warns(AmbiguousMinusOneWarning) as caught:
        warn_if_minus_one_ambiguous([1, -1, -1])
    message = str(caught[0].message)
    assert message.startswith("y: 2 of the 3 labels are -1, read as unlabeled rows")
    assert "give it another label before fitting" in message
    assert "section 'Unlabeled rows'" in message
    with pytest.warns(AmbiguousMinusOneWarning, match=r"^data.csv: .* Do this\.$"):
        warn_if_minus_one_ambiguous(
            [0, -1, -1], minus_one="class", name="data.csv", fix="Do this."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_minus_one_ambiguous([0, 1, -1, -1])  # no problem, no warning
