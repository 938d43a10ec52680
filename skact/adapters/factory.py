"""The one place that looks at the user's input to decide what kind it is.

Kinds other than tables are *registered*: :func:`register_adapter` adds an adapter
class and the test that claims input for it, tried in order (images first). Input that
no registered kind claims is a table, read as a mixed table or as numbers by the rule
of :func:`read_input`. A new kind of input is one module (its adapter) and one call of
:func:`register_adapter`.
"""

from __future__ import annotations

from collections.abc import Callable
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

__all__ = ["ADAPTERS", "read_input", "register_adapter", "unregister_adapter"]

#: Tables: what no registered kind claims (mixed or numeric, see :func:`read_input`).
TABLE_ADAPTERS: tuple[type[InputAdapter], ...] = (MixedTableAdapter, TabularAdapter)

#: Adapter classes by ``kind`` (the name saved with a model): tables and registered kinds.
ADAPTERS: dict[str, type[InputAdapter]] = {cls.kind: cls for cls in TABLE_ADAPTERS}

#: Registered kinds and the tests that claim input for them, in the order tried.
_REGISTERED: list[tuple[type[InputAdapter], Callable[[Any], bool]]] = []


def register_adapter(
    cls: type[InputAdapter], detect: Callable[[Any], bool]
) -> type[InputAdapter]:
    """Add a kind of input: ``cls`` reads the input that ``detect`` claims.

    Kinds are tried in the order they were registered (images first), before the
    input is taken for a table; the first whose ``detect`` returns True reads it.

    Parameters
    ----------
    cls : type
        An adapter class (:class:`~skact.adapters.base.InputAdapter`); its ``kind``
        names it in saved models and must be new.
    detect : callable
        ``detect(X) -> bool``: whether the user's input ``X`` (as given to ``fit`` or
        ``transform``, not yet checked) is of this kind. It must not consume ``X``.

    Returns
    -------
    type
        ``cls``.

    Raises
    ------
    ValueError
        When a kind of that name is already registered.

    See Also
    --------
    unregister_adapter : Remove a kind added here.
    """
    if cls.kind in ADAPTERS:
        raise ValueError(
            f"an input adapter of kind {cls.kind!r} is already registered "
            f"({ADAPTERS[cls.kind].__qualname__})"
        )
    ADAPTERS[cls.kind] = cls
    _REGISTERED.append((cls, detect))
    return cls


def unregister_adapter(cls: type[InputAdapter]) -> None:
    """Remove a kind added by :func:`register_adapter`.

    Parameters
    ----------
    cls : type
        The registered adapter class.

    Raises
    ------
    ValueError
        When ``cls`` is not a registered kind (tables are not: they are the default).
    """
    entries = [entry for entry in _REGISTERED if entry[0] is cls]
    if not entries:
        raise ValueError(f"{cls.__qualname__} is not a registered input adapter")
    _REGISTERED.remove(entries[0])
    del ADAPTERS[cls.kind]


def _claimed(X: Any) -> type[InputAdapter] | None:
    """The first registered kind that claims ``X``; None for a table."""
    return next((cls for cls, detect in _REGISTERED if detect(X)), None)


def read_input(
    X: Any, estimator: ACTEncoder, fitted: InputAdapter | None = None
) -> tuple[type[InputAdapter], Any]:
    """Decide the kind of ``X`` (or check it is the fitted kind) and read it.

    The first registered kind whose test claims ``X`` reads it (images: what
    :func:`skact.io.images.is_image_input` says). Other input is a table, read column
    by column (:class:`~skact.adapters.mixed.MixedTableAdapter`) when it holds
    categorical or string columns, when ``handle_missing`` is not ``"error"`` or when
    ``categorical_features`` names columns, else as numbers
    (:class:`~skact.adapters.table.TabularAdapter`). After ``fit``, the fitted kind
    decides.

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
    claimed = _claimed(X)
    if fitted is not None:
        cls: type[InputAdapter] = type(fitted)
        if claimed is not None and claimed is not cls:
            raise ValueError(f"{name} was fitted on {cls.kind} data; got {claimed.label}")
        if claimed is None and cls not in TABLE_ADAPTERS:
            raise ValueError(
                f"{name} was fitted on {cls.label}; transform needs {cls.label} too "
                f"({cls.expected_input})"
            )
    if claimed is None:
        check_table_container(X, name)
        check_not_empty(X, name)
    if fitted is None and claimed is not None:
        cls = claimed
    elif fitted is None:
        mixed = (
            estimator.handle_missing != "error"
            or not isinstance(estimator.categorical_features, str)
            or is_mixed_input(X)
        )
        cls = MixedTableAdapter if mixed else TabularAdapter
    elif cls is TabularAdapter and (columns := text_columns(X)):
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


register_adapter(ImageAdapter, is_image_input)
