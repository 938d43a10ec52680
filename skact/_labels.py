"""Which rows of a label column are unlabeled: skact's one rule, for Python and the CLI.

The rule (the user guide's few-shot page, section "Unlabeled rows", states it for
users): a row is unlabeled when its label is missing (None, NaN, pandas' NA, NaT, a
blank string) or -1, the number or the text that spells it ("-1", "-1.0"), as
scikit-learn's semi-supervised estimators mark one. Text is read as the number it
spells because that is what numpy and CSV files make of numbers: ``np.array(["cat",
-1])`` holds the string ``"-1"``, ``np.array(["cat", np.nan])`` the string ``"nan"``.
With ``minus_one="class"`` a -1 is a class like any other and only missing labels
mark unlabeled rows, for data whose classes include -1.
"""

from __future__ import annotations

import math
import warnings
from numbers import Number
from typing import Any

import numpy as np

from .io.tables import is_missing_cell

__all__ = [
    "MINUS_ONE",
    "AmbiguousMinusOneWarning",
    "labeled_mask",
    "minus_one_problem",
    "semi_supervised_target",
    "warn_if_minus_one_ambiguous",
]

#: What a label of -1 can mean: an unlabeled row (skact's default) or a class.
MINUS_ONE = ("unlabeled", "class")


class AmbiguousMinusOneWarning(UserWarning):
    """The -1 labels of ``y`` look like they mean the other thing than the rule says."""


def _spelled(text: str | bytes) -> float | None:
    """The number a label's text spells (NaN for blank text), else None."""
    if not text.strip():
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def _value(label: Any) -> float | None:
    """A label as a number: numbers as they are, text as the number it spells (NaN:
    blank or "nan"), missing as NaN; None for a label that is not a number."""
    if isinstance(label, str | bytes):
        return _spelled(label)
    if is_missing_cell(label):
        return math.nan
    if isinstance(label, Number) and not isinstance(label, bool | np.bool_):
        try:
            # numbers.Number promises no __float__ to the type checker; the numbers
            # that reach here (int, float, numpy scalars, Decimal, Fraction) have it.
            return float(label)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    return None


def _values(y: np.ndarray) -> np.ndarray:
    """Each label of a 1-d ``y`` as a float (see :func:`_value`), NaN where missing,
    ``inf`` where it is no number (a class name); numbers stay as they are."""
    if y.dtype.kind in "iuf":
        return y.astype(np.float64)
    if y.dtype.kind == "b":
        return np.full(y.shape, np.inf)
    if y.dtype.kind in "US":
        # Many rows, few distinct labels: read each distinct text once.
        distinct, inverse = np.unique(y, return_inverse=True)
        read = [_value(v) for v in distinct.tolist()]
        values = np.array([np.inf if v is None else v for v in read], dtype=np.float64)
        return values[inverse.reshape(y.shape)]
    read = [_value(v) for v in y.tolist()]
    return np.array([np.inf if v is None else v for v in read], dtype=np.float64)


def _check_minus_one(minus_one: str) -> None:
    if minus_one not in MINUS_ONE:
        raise ValueError(
            f"minus_one must be one of {MINUS_ONE} (what a label of -1 means), got "
            f"{minus_one!r}"
        )


def labeled_mask(y: Any, *, minus_one: str = "unlabeled") -> np.ndarray:
    """Which rows of ``y`` carry a label, by skact's rule for unlabeled rows.

    A row is unlabeled when its label is missing (None, NaN, pandas' NA, NaT, blank
    text) or -1: the number (int or float, as scikit-learn's semi-supervised
    estimators such as :class:`~sklearn.semi_supervised.SelfTrainingClassifier`
    mark one) or the text that spells it (``"-1"``, ``"-1.0"``: what numpy makes of
    ``np.array(["cat", -1])``, and a CSV file of every number). Text spelling NaN
    (``"nan"``) is missing too.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels, with unlabeled rows marked.
    minus_one : {"unlabeled", "class"}, default="unlabeled"
        What a -1 label means: an unlabeled row, or a class like any other (for data
        whose classes include -1; only missing labels are unlabeled then).

    Returns
    -------
    ndarray of bool of shape (n_samples,)
        True where the row is labeled.
    """
    _check_minus_one(minus_one)
    y = np.asarray(y)
    values = _values(y.ravel()).reshape(y.shape)
    unlabeled = np.isnan(values)
    if minus_one == "unlabeled":
        unlabeled |= values == -1
    return ~unlabeled


def semi_supervised_target(
    y: Any, *, minus_one: str = "unlabeled"
) -> tuple[np.ndarray, np.ndarray]:
    """``y`` as an array, and which of its rows are labeled (see :func:`labeled_mask`).

    Numbers in an object array, as pandas' nullable integers with NA for the unlabeled
    rows give, become a numeric array with -1 for the unlabeled rows: as objects,
    scikit-learn cannot tell what kind of target they are.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels, with unlabeled rows marked.
    minus_one : {"unlabeled", "class"}, default="unlabeled"
        What a -1 label means (see :func:`labeled_mask`).

    Returns
    -------
    y : ndarray of shape (n_samples,)
    labeled : ndarray of bool of shape (n_samples,)
    """
    y = np.asarray(y)
    labeled = labeled_mask(y, minus_one=minus_one)
    if (
        minus_one == "unlabeled"
        and y.dtype.kind == "O"
        and all(isinstance(v, Number) for v in y[labeled].ravel())
    ):
        y = np.asarray(np.where(labeled, y, -1).tolist())
    return y, labeled


def minus_one_problem(y: Any, *, minus_one: str = "unlabeled") -> str | None:
    """Why the -1 labels of ``y`` look like they mean what the rule says they do not,
    or None.

    Read as unlabeled rows (``minus_one="unlabeled"``), -1 looks like a class when the
    other labels are only 1 (a -1/+1 binary target) or include other negative numbers.
    Read as a class (``minus_one="class"``), -1 looks like the mark of unlabeled rows
    when it labels at least half of the rows and the other labels are non-negative
    integers or text (not only 1).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels.
    minus_one : {"unlabeled", "class"}, default="unlabeled"
        What a -1 label is taken to mean.

    Returns
    -------
    str or None
        The problem in a sentence, for a warning that then says what to do.
    """
    _check_minus_one(minus_one)
    values = _values(np.asarray(y).ravel())
    is_minus_one = values == -1
    n_minus_one, n = int(is_minus_one.sum()), len(values)
    others = values[~is_minus_one & ~np.isnan(values)]
    if n_minus_one == 0 or others.size == 0:
        return None
    numbers = others[np.isfinite(others)]
    count = f"{n_minus_one} of the {n} labels {'is' if n_minus_one == 1 else 'are'} -1"
    if minus_one == "unlabeled":
        if numbers.size < others.size:
            return None  # class names beside -1: the marker of unlabeled rows
        if set(numbers.tolist()) == {1.0}:
            return (
                f"{count}, read as unlabeled rows, and every other label is 1: this "
                "looks like a -1/+1 binary target, whose -1 is a class."
            )
        negative = np.unique(numbers[numbers < 0])
        if negative.size:
            shown = ", ".join(f"{v:g}" for v in negative[:5])
            return (
                f"{count}, read as unlabeled rows, but other labels are negative too "
                f"({shown}): -1 looks like a class among them."
            )
        return None
    if 2 * n_minus_one < n or set(numbers.tolist()) == {1.0}:
        return None
    text = numbers.size == 0
    whole = numbers.size == others.size and bool(
        np.all((numbers >= 0) & (numbers == np.round(numbers)))
    )
    if not (text or whole):
        return None
    kind = "text" if text else "non-negative integers"
    return (
        f"{count}, read as a class, while the other labels are {kind}: -1 looks like "
        "the mark of unlabeled rows (scikit-learn's semi-supervised convention)."
    )


def warn_if_minus_one_ambiguous(
    y: Any,
    *,
    minus_one: str = "unlabeled",
    name: str = "y",
    fix: str | None = None,
    stacklevel: int = 2,
) -> None:
    """Warn (:class:`AmbiguousMinusOneWarning`) when :func:`minus_one_problem` finds one.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels.
    minus_one : {"unlabeled", "class"}, default="unlabeled"
        What a -1 label is taken to mean.
    name : str, default="y"
        What the labels are called in the message.
    fix : str or None, default=None
        What to do about it; None: the advice for a Python caller.
    stacklevel : int, default=2
        As for :func:`warnings.warn`, counted from the caller.
    """
    problem = minus_one_problem(y, minus_one=minus_one)
    if problem is None:
        return
    if fix is None:
        fix = (
            "If -1 is a class here, give it another label before fitting (for "
            "example y = np.where(y == -1, 0, y) for a -1/+1 target): skact reads -1, "
            "NaN, None and blank labels as unlabeled rows (the user guide's few-shot "
            "page, section 'Unlabeled rows')."
        )
    warnings.warn(
        f"{name}: {problem} {fix}", AmbiguousMinusOneWarning, stacklevel=stacklevel + 1
    )
