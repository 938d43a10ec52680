"""What the estimator needs from the adapter of one kind of input."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import torch
from torch import Tensor, nn

from .._auto import AutoSettings, table_settings

if TYPE_CHECKING:
    from .._encoder import ACTEncoder

#: Why a model fitted with a callable ``augment`` is not saved, and what to do instead.
UNSAVED_AUGMENT = (
    "augment={augment!r} is code of one's own, which ACTEncoder.save does not store "
    "(a saved model runs no code when loaded). Pickle the fitted estimator instead "
    "(pickle or joblib.dump, with the callable importable where it is loaded), or fit "
    "with an ImageAugment to save."
)


class InputAdapter(Protocol):
    """The estimator's view of one kind of input, fitted on the training data.

    Attributes
    ----------
    kind : str
        ``"tabular"``, ``"mixed"`` or ``"image"`` (saved with the model).
    networks : tuple of str
        The built-in ``encoder`` names that accept this kind of input.
    input_shape : tuple of int
        One sample as the network (or its front end) sees it.
    """

    kind: ClassVar[str]
    networks: ClassVar[tuple[str, ...]]
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

    def streams(self, X: Any) -> bool:
        """Whether ``partial_fit`` on ``X`` reads it batch by batch (files)."""
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


class TableAdapterMixin:
    """What numeric and mixed tables share: the MLP, table settings, no streaming."""

    kind: ClassVar[str]
    networks: ClassVar[tuple[str, ...]] = ("mlp",)
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
