"""The fitted state of an ACTEncoder, declared once: each attribute and how it is kept.

``fit`` sets these attributes (``ACTEncoder._initialize``); pickling
(``ACTEncoder.__getstate__``), the model file (:mod:`skact._persistence`) and the
rollback of a failed fit (:class:`skact._guards.FitRollback`) all work from this table,
so a new attribute is declared here or a test fails
(``tests/test_persistence.py::test_saved_attributes_cover_the_fitted_state``).

How each is kept (``Stored``):

- ``JSON``: numbers, strings and lists, written into the model file's ``skact.json``;
- ``TENSORS``: modules and optimiser states, pickled through :func:`torch.save` so
  that their storage can be mapped to the device in use, and written to
  ``tensors.pt``;
- ``GENERATOR``: the augmentation generator's state, a CPU ByteTensor whatever the
  generator's device (mapped to CUDA it is refused), pickled as a numpy array;
- ``ADAPTER``: the input adapter, saved by its ``state_dict``;
- ``DERIVED``: rebuilt from other state on load (the adapter's public attributes,
  the parameters that shaped the networks).
"""

from __future__ import annotations

import enum

import torch

from . import _training

__all__ = [
    "FITTED_STATE",
    "Stored",
    "available_or_cpu",
    "names_stored_as",
]


class Stored(enum.Enum):
    """How a fitted attribute is pickled and saved."""

    JSON = "json"
    TENSORS = "tensors"
    GENERATOR = "generator"
    ADAPTER = "adapter"
    DERIVED = "derived"


#: Every fitted attribute of ACTEncoder, with how it is kept.
FITTED_STATE: dict[str, Stored] = {
    # What the estimator saw and did.
    "n_features_in_": Stored.JSON,
    "feature_names_in_": Stored.JSON,  # set only for DataFrames with string names
    "n_iter_": Stored.JSON,
    "loss_curve_": Stored.JSON,
    "validation_loss_curve_": Stored.JSON,
    "monitor_curve_": Stored.JSON,
    "monitor_name_": Stored.JSON,
    "device_": Stored.JSON,
    # The clones of `callbacks` the last call ran: not saved (they may hold your code);
    # a loaded model has none.
    "callbacks_": Stored.DERIVED,
    # The input and the networks.
    "_adapter": Stored.ADAPTER,
    "categories_": Stored.DERIVED,  # the adapter's
    "is_categorical_": Stored.DERIVED,  # the adapter's
    "_network_name": Stored.JSON,  # the built-in network "auto" resolved to
    "_fitted_architecture": Stored.DERIVED,  # from the saved parameters
    "_n_components_out": Stored.JSON,
    "encoder_": Stored.TENSORS,
    "projector_": Stored.TENSORS,
    # Training state that warm_start and partial_fit continue.
    "_optimizer_state": Stored.TENSORS,
    "_adversary_state": Stored.TENSORS,
    "_generator_state": Stored.GENERATOR,
    "_shuffle_rng": Stored.JSON,  # the bit generator's state
    "_step": Stored.JSON,
    "_partial_fit_start": Stored.JSON,
}


def names_stored_as(stored: Stored) -> tuple[str, ...]:
    """The fitted attributes kept as ``stored``, in declaration order.

    Parameters
    ----------
    stored : Stored

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> names_stored_as(Stored.GENERATOR)
    ('_generator_state',)
    """
    return tuple(name for name, how in FITTED_STATE.items() if how is stored)


def available_or_cpu(device: torch.device) -> torch.device:
    """``device`` when this machine has it, else the CPU (a CUDA model on a laptop).

    A CUDA device index this machine lacks becomes the current CUDA device.

    Parameters
    ----------
    device : torch.device
        The device a model was fitted on.

    Returns
    -------
    torch.device

    Examples
    --------
    >>> available_or_cpu(torch.device("cpu"))
    device(type='cpu')
    """
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index or 0  # the first device exists wherever CUDA does
        return (
            device
            if index == 0 or index < torch.cuda.device_count()
            else torch.device("cuda")
        )
    if device.type == "mps" and _training._mps_available():
        return device
    return torch.device("cpu")
