"""What the estimator needs from the adapter of one kind of input."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, Self

import numpy as np
import torch
from torch import Tensor, nn

from .._auto import AutoSettings, table_settings

if TYPE_CHECKING:
    from .._encoder import ACTEncoder

#: Why a model fitted with a callable ``augment`` is not saved, and what to do instead.
UNSAVED_AUGMENT = (
    "augment={augment!r} is code of one's own, which ACTEncoder.save does not store "
    "(a saved model runs no code when loaded). Pickle the fitted estimator instead "
    "(pickle or joblib.dump, with the callable or class importable where it is "
    "loaded), or fit with skact's own ImageAugment or TabularAugment to save."
)


class SavedArray(NamedTuple):
    """One array of an adapter's :meth:`~InputAdapter.state_dict`, as ``load`` checks it.

    Parameters
    ----------
    dtype : torch.dtype
        The array's dtype in the file (any other is refused).
    length : callable
        ``length(state, fitted)``: its length, from the adapter's JSON state and the
        model's fitted values (``n_features_in_``, ...), both as read from the file.
    positive : bool, default=False
        Whether every value must be above 0 (an array that divides).
    optional : bool, default=False
        Whether a file may lack it (a model saved before the array was added).
    """

    dtype: torch.dtype
    length: Callable[[dict[str, Any], dict[str, Any]], Any]
    positive: bool = False
    optional: bool = False


class InputAdapter(Protocol):
    """The estimator's view of one kind of input, fitted on the training data.

    Attributes
    ----------
    kind : str
        ``"tabular"``, ``"mixed"`` or ``"image"`` (saved with the model; the key of
        :func:`~skact.adapters.factory.register_adapter`'s registry).
    label : str
        The kind in words (``"table"``, ``"images"``), for summaries and messages.
    expected_input : str
        What input of this kind looks like, for the message refusing other input
        after ``fit`` (unused by tables, which take what no other kind claims).
    networks : tuple of str
        The built-in ``encoder`` names that accept this kind of input.
    saved_arrays : dict of str to SavedArray
        The arrays of :meth:`state_dict`, by key, with what ``load`` checks of each.
    ignored_params : tuple of str
        ``ACTEncoder`` parameters that other kinds read and this one does not: set
        away from their defaults, ``fit`` warns that they have no effect
        (:class:`~skact.IgnoredParameterWarning`). An adapter without it ignores none.
    input_shape : tuple of int
        One sample as the network (or its front end) sees it.
    """

    kind: ClassVar[str]
    label: ClassVar[str]
    expected_input: ClassVar[str]
    networks: ClassVar[tuple[str, ...]]
    saved_arrays: ClassVar[dict[str, SavedArray]]
    ignored_params: ClassVar[tuple[str, ...]]
    input_shape: tuple[int, ...]

    @classmethod
    def read(cls, X: Any, estimator: ACTEncoder, reset: bool) -> Any:
        """Check ``X`` and record its features on ``estimator`` when ``reset``."""
        ...

    @classmethod
    def from_input(
        cls, X: Any, estimator: ACTEncoder, device: torch.device, measure: bool = True
    ) -> Self:
        """The adapter of read input ``X`` for ``estimator``'s parameters on ``device``;
        ``measure=False`` skips statistics that ``"auto"`` does not need."""
        ...

    def auto_settings(self, device_type: str, n_samples: int) -> AutoSettings:
        """What ``"auto"`` means for ``n_samples`` of this input on ``device_type``."""
        ...

    def network_name(self, encoder: str, device_type: str) -> str:
        """The built-in network of ``encoder`` (a name or ``"auto"``), checked."""
        ...

    def front_end(self) -> nn.Module | None:
        """A layer to put before the network (categorical embeddings), or None."""
        ...

    def place(self, network: nn.Module, device: torch.device) -> nn.Module:
        """``network`` on ``device``, in the memory format this input runs fastest in."""
        ...

    def check_network(self, network: nn.Module) -> None:
        """Raise a ValueError naming the fix if ``network`` cannot take this input."""
        ...

    def describe_input(self) -> str:
        """What the network gets, in words, for messages about a user's network."""
        ...

    def describe_reading(self, estimator: ACTEncoder) -> str:
        """How ``fit`` read the input, in words, for the log."""
        ...

    def speed_advice(self, network: str | None) -> str:
        """The settings that make a fit on this input shorter, for a long CPU fit."""
        ...

    def warn_unfamiliar(self, X: Any, names: list[str] | None) -> None:
        """Warn once (skact's warning classes) about read input ``X`` unlike the fit's:
        unseen categories, numbers far outside the fitted range; change nothing
        (optional: an adapter without it is not checked)."""
        ...

    def streams(self, X: Any) -> bool:
        """Whether ``partial_fit`` on ``X`` reads it batch by batch (files)."""
        ...

    def stream(self, X: Any, device: torch.device) -> Any:
        """Training data read from ``X`` batch by batch, indexed by sample indices
        (only where :meth:`streams` says so)."""
        ...

    def training_context(self, device: torch.device) -> AbstractContextManager[Any]:
        """A context that training on ``device`` runs in (backend flags)."""
        ...

    def fitted_attributes(self) -> dict[str, Any]:
        """Public fitted attributes this adapter defines (``categories_``, ...)."""
        ...

    def to_storage(self, X: Any) -> Tensor:
        """The whole input in its compact host form."""
        ...

    def to_model(self, batch: Tensor) -> Tensor:
        """A stored batch, already on the device, as network input."""
        ...

    def view(self, batch: Tensor, pool: Tensor, generator: torch.Generator) -> Tensor:
        """One random augmented view of a stored batch."""
        ...

    def preprocessing_module(self) -> nn.Module:
        """What turns the raw input (tensors a user has: float rows, category codes,
        uint8 images) into network input, as an exportable torch module whose
        arguments are the inputs :meth:`input_spec` lists."""
        ...

    def input_spec(self, columns: list[str] | None) -> dict[str, Any]:
        """The inputs of :meth:`preprocessing_module`, JSON-able: ``inputs`` (per
        input: ``name``, ``dtype``, ``shape`` with ``"n"`` for the batch axis, and
        ``columns`` for tables), and what else a user needs to prepare them.
        ``columns`` names the table's columns (None: ``x0``, ``x1``, ...)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-able values and arrays."""
        ...

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Self:
        """The adapter :meth:`state_dict` describes."""
        ...


def table_width(state: dict[str, Any], fitted: dict[str, Any]) -> Any:
    """The length of a numeric table's saved statistics: its number of columns."""
    return fitted["n_features_in_"]


class TableAdapterMixin:
    """What numeric and mixed tables share: the MLP, table settings, no streaming."""

    kind: ClassVar[str]
    networks: ClassVar[tuple[str, ...]] = ("mlp",)
    expected_input: ClassVar[str] = "a table of shape (n_samples, n_features)"
    #: What only images read (``corruption_rate`` and ``noise_scale`` are refused for
    #: images by :func:`~skact.augment.tabular.refuse_table_views` instead).
    ignored_params: ClassVar[tuple[str, ...]] = (
        "image_size",
        "image_layout",
        "channel_mismatch",
        "image_normalization",
    )
    input_shape: tuple[int, ...]  # set by each table adapter

    def auto_settings(self, device_type: str, n_samples: int) -> AutoSettings:
        """See :func:`skact._auto.table_settings` (the same on every device).

        Parameters
        ----------
        device_type : str
        n_samples : int

        Returns
        -------
        AutoSettings
        """
        return table_settings(n_samples)

    def network_name(self, encoder: str, device_type: str) -> str:
        """``"mlp"`` for ``"auto"`` and ``"mlp"``; image networks are refused.

        Parameters
        ----------
        encoder : str
        device_type : str

        Returns
        -------
        str
        """
        if encoder == "auto":
            return self.auto_settings(device_type, 0).encoder
        if encoder not in self.networks:
            raise ValueError(f"encoder={encoder!r} needs image input; got a table")
        return encoder

    def to_model(self, batch: Tensor) -> Tensor:
        """Stored rows are already network input (a mixed table's encoder embeds its
        category codes itself).

        Parameters
        ----------
        batch : Tensor

        Returns
        -------
        Tensor
        """
        return batch

    def front_end(self) -> nn.Module | None:
        """None: the rows are network input as they are.

        Returns
        -------
        None
        """
        return None

    def place(self, network: nn.Module, device: torch.device) -> nn.Module:
        """``network`` moved to ``device``.

        Parameters
        ----------
        network : torch.nn.Module
        device : torch.device

        Returns
        -------
        torch.nn.Module
        """
        return network.to(device)

    def check_network(self, network: nn.Module) -> None:
        """Nothing to check: a table's width is checked by the network's own build.

        Parameters
        ----------
        network : torch.nn.Module
        """

    def describe_input(self) -> str:
        """What the network gets: batches of the table's standardised rows.

        Returns
        -------
        str
        """
        width = self.input_shape[0]
        return (
            f"batches of shape (n, {width}): rows of the table's {width} columns, "
            "standardised"
        )

    def describe_reading(self, estimator: ACTEncoder) -> str:
        """The table's width, its categorical columns and its missing indicators.

        Parameters
        ----------
        estimator : ACTEncoder
            Fitted on this input: gives ``n_features_in_``, ``is_categorical_``,
            ``feature_names_in_`` and ``handle_missing``.

        Returns
        -------
        str
        """
        mask = getattr(estimator, "is_categorical_", None)
        n = int(estimator.n_features_in_)
        said = f"a table of {n} column{'' if n == 1 else 's'}, standardised"
        if mask is not None:
            names = getattr(estimator, "feature_names_in_", None)
            columns = [
                str(names[i]) if names is not None else str(i) for i in np.flatnonzero(mask)
            ]
            shown = ", ".join(columns[:10]) + (", ..." if len(columns) > 10 else "")
            said += f"; {len(columns)} categorical, embedded: {shown}"
        if estimator.handle_missing == "indicator":
            said += "; missing values get indicators"
        return said

    def speed_advice(self, network: str | None) -> str:
        """Fewer epochs, a smaller MLP or larger batches.

        Parameters
        ----------
        network : str or None
            The built-in network trained (None: the user's).

        Returns
        -------
        str
        """
        return (
            "max_iter (e.g. max_iter=20), smaller hidden_layer_sizes or a larger batch_size"
        )

    def training_context(self, device: torch.device) -> AbstractContextManager[Any]:
        """No backend flag: an MLP has no convolutions for cuDNN to tune.

        Parameters
        ----------
        device : torch.device

        Returns
        -------
        contextlib.nullcontext
        """
        return contextlib.nullcontext()

    def stream(self, X: Any, device: torch.device) -> Any:
        """Refused: tables are stored whole (:meth:`streams` is False).

        Parameters
        ----------
        X : object
        device : torch.device

        Raises
        ------
        TypeError
            Always.
        """
        raise TypeError(f"{type(self).__name__} stores tables whole; none is streamed")

    def streams(self, X: Any) -> bool:
        """False: tables are stored whole.

        Parameters
        ----------
        X : object

        Returns
        -------
        bool
        """
        return False

    def fitted_attributes(self) -> dict[str, Any]:
        """No categorical columns: ``categories_`` empty, ``is_categorical_`` None.

        Returns
        -------
        dict
        """
        return {"categories_": [], "is_categorical_": None}
