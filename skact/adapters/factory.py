"""The one place that looks at the user's input to decide what kind it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..io.images import is_image_input
from ..io.tables import (
    check_not_an_iterator,
    check_not_empty,
    check_table_container,
    is_mixed_input,
    text_columns,
)
from .base import InputAdapter
from .image import ImageAdapter
from .mixed import MixedTableAdapter
from .table import TabularAdapter

if TYPE_CHECKING:
    from .._encoder import ACTEncoder

__all__ = ["ADAPTERS", "read_input"]

#: Adapter classes by ``kind`` (the name saved with a model).
ADAPTERS: dict[str, type[InputAdapter]] = {
    cls.kind: cls for cls in (TabularAdapter, MixedTableAdapter, ImageAdapter)
}


def read_input(
    X: Any, estimator: ACTEncoder, fitted: InputAdapter | None = None
) -> tuple[type[InputAdapter], Any]:
    """Decide the kind of ``X`` (or check it is the fitted kind) and read it.

    Images are what :func:`skact.io.images.is_image_input` says; other input is a table,
    read column by column (:class:`~skact.adapters.mixed.MixedTableAdapter`) when it
    holds categorical or string columns, when ``handle_missing`` is not ``"error"`` or
    when ``categorical_features`` names columns, else as numbers
    (:class:`~skact.adapters.table.TabularAdapter`). After ``fit``, the fitted kind decides.

    Parameters
    ----------
    X : object
        The user's input to ``fit``, ``partial_fit`` or ``transform``.
    estimator : ACTEncoder
        Its parameters choose the table reader; reading records ``X``'s features on it
        when ``fitted`` is None.
    fitted : InputAdapter or None, default=None
        The adapter fitted earlier (``transform``, ``partial_fit``, ``warm_start``);
        None in a new fit.

    Returns
    -------
    adapter_class : type
        The adapter class of ``X``'s kind.
    X_read : object
        ``X`` as that adapter's ``from_input`` and ``to_storage`` take it.

    Raises
    ------
    ValueError
        When ``X`` is not of the fitted kind.
    """
    name = type(estimator).__name__
    check_not_an_iterator(X, name)  # before anything reads it: it can be read once
    images = is_image_input(X)
    if fitted is not None:
        cls: type[InputAdapter] = type(fitted)
        if images and cls.kind != "image":
            raise ValueError(f"{name} was fitted on {cls.kind} data; got images")
        if not images and cls.kind == "image":
            raise ValueError(
                f"{name} was fitted on images; transform needs images too (a 3-D or "
                "4-D array, PIL images or file paths)"
            )
    if not images:
        check_table_container(X, name)
        check_not_empty(X, name)
    if fitted is None and images:
        cls = ImageAdapter
    elif fitted is None:
        mixed = (
            estimator.handle_missing != "error"
            or not isinstance(estimator.categorical_features, str)
            or is_mixed_input(X)
        )
        cls = MixedTableAdapter if mixed else TabularAdapter
    elif cls.kind == "tabular" and not images and (columns := text_columns(X)):
        # The numbers path would say "encode text columns first", which a new fit does
        # itself: what happened is that a column changed type since the fit.
        where = f"column{'s' if len(columns) > 1 else ''} " + ", ".join(
            repr(c) for c in columns[:5]
        )
        raise ValueError(
            f"{name} was fitted on a table of numbers (every column numeric or "
            f"boolean), but X now holds text in {where}: a column's type "
            "changed since that fit. partial_fit, transform and fit with "
            "warm_start=True need the column types of the first fit: pass the same "
            "types (booleans as booleans, numbers as numbers), or fit again with "
            "warm_start=False, which encodes text columns itself."
        )
    return cls, cls.read(X, estimator, reset=fitted is None)
