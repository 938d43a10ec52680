"""Warnings skact raises, each its own class (filterable by class).

:class:`IgnoredParameterWarning` says a parameter set for another kind of input has no
effect. The two others are about data that differs from what ``fit`` saw; both are
raised by ``transform``, ``partial_fit`` and a ``warm_start`` fit of a table,
once per call, and change nothing in the numbers: the features are those the model
computes anyway. Silence one with :func:`warnings.filterwarnings`::

    warnings.filterwarnings("ignore", category=skact.UnseenCategoryWarning)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

__all__ = [
    "IgnoredParameterWarning",
    "OutOfRangeWarning",
    "UnseenCategoryWarning",
    "warn_out_of_range",
    "warn_unseen_categories",
]


class IgnoredParameterWarning(UserWarning):
    """A parameter set away from its default has no effect on this kind of input.

    For example ``image_size`` for a table, or ``handle_missing`` for images: each
    input kind reads its own parameters (``ignored_params`` of its adapter).
    """


def warn_ignored_params(ignored: Mapping[str, object], label: str, stacklevel: int) -> None:
    """Warn once that the parameters ``ignored`` (name -> value) do nothing for
    ``label`` input.

    Parameters
    ----------
    ignored : mapping of str to object
        The parameters set away from their defaults that this kind does not read.
    label : str
        The input kind in words (``"table"``, ``"images"``).
    stacklevel : int
        Passed to :func:`warnings.warn`.
    """
    if not ignored:
        return
    named = ", ".join(f"{name}={value!r}" for name, value in ignored.items())
    warnings.warn(
        f"{named} {'has' if len(ignored) == 1 else 'have'} no effect on {label}: "
        f"{'it is' if len(ignored) == 1 else 'they are'} read for another kind of "
        "input only. Leave it at its default to silence this warning.",
        IgnoredParameterWarning,
        stacklevel=stacklevel,
    )


class UnseenCategoryWarning(UserWarning):
    """A categorical column holds values that ``fit`` did not see.

    Such a value is encoded as the column's unknown category (embedded as the mean of
    its known categories), as a gap is where the column had none in ``fit``.
    """


class OutOfRangeWarning(UserWarning):
    """A numeric column holds values far outside the range it had in ``fit``.

    Far: beyond the fitted minimum or maximum by more than the column's fitted standard
    deviation (1 for a column constant in ``fit``). The values are standardised as any
    other; the network never saw values like them.
    """


def _columns(counts: Mapping[str, int]) -> str:
    return ", ".join(
        f"{name!r} ({n} row{'' if n == 1 else 's'})" for name, n in counts.items()
    )


def _rows(n: int) -> str:
    return f"{n} row holds" if n == 1 else f"{n} rows hold"


def warn_unseen_categories(counts: Mapping[str, int], n_rows: int, stacklevel: int) -> None:
    """Warn once that ``n_rows`` rows hold categories unseen in ``fit``.

    Parameters
    ----------
    counts : mapping of str to int
        Per categorical column with unseen values, its number of such rows.
    n_rows : int
        Rows with an unseen value in at least one column.
    stacklevel : int
        Passed to :func:`warnings.warn`.
    """
    if not counts:
        return
    warnings.warn(
        f"{_rows(n_rows)} categories not seen in fit, in "
        f"columns {_columns(counts)}: they are encoded as the column's unknown "
        "category. Refit (or fit upstream on data with these categories) to learn them.",
        UnseenCategoryWarning,
        stacklevel=stacklevel + 1,
    )


def warn_out_of_range(counts: Mapping[str, int], n_rows: int, stacklevel: int) -> None:
    """Warn once that ``n_rows`` rows hold numbers far outside the fitted range.

    Parameters
    ----------
    counts : mapping of str to int
        Per numeric column with such values, its number of such rows.
    n_rows : int
        Rows with such a value in at least one column.
    stacklevel : int
        Passed to :func:`warnings.warn`.
    """
    if not counts:
        return
    warnings.warn(
        f"{_rows(n_rows)} values beyond the range seen in "
        "fit by more than the column's standard deviation, in columns "
        f"{_columns(counts)}: they are standardised as in fit, but the network never "
        "saw such values.",
        OutOfRangeWarning,
        stacklevel=stacklevel + 1,
    )
