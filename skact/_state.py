"""The fitted state of an ACTEncoder, declared once: each attribute and how it is kept.

``fit`` sets these attributes (``ACTEncoder._initialize``). Each is a :class:`Field`
that knows how it is stored, encoded, checked and defaulted for files and pickles of
older skact, and everything that keeps the state loops over :data:`FITTED_STATE`:
pickling (:func:`pickled`, :func:`unpickled`), the model file
(:func:`skact._persistence.save` and :func:`skact._persistence.load`) and the rollback
of a failed fit (:class:`skact._guards.FitRollback`). A new fitted attribute is one
new field here: ``tests/test_state.py`` fails for an attribute a fit sets that is not
declared, and :func:`skact._persistence.save` refuses a field it cannot check on load.

How each is kept (``Stored``):

- ``JSON``: numbers, strings and lists, written into the model file's ``skact.json``
  (under ``"fitted"``), checked by the field's ``check`` before anything is built;
- ``TENSORS``: modules and optimiser states, pickled through :func:`torch.save` so
  that their storage can be mapped to the device in use, and written to
  ``tensors.pt``, where :mod:`skact._persistence` checks them against the networks
  the saved parameters describe;
- ``GENERATOR``: the augmentation generator's state, a CPU ByteTensor whatever the
  generator's device (mapped to CUDA it is refused), pickled as a numpy array;
- ``ADAPTER``: the input adapter, saved by its ``state_dict``;
- ``DERIVED``: rebuilt from other state on load (the adapter's public attributes,
  the parameters that shaped the networks).
"""

from __future__ import annotations

import dataclasses
import enum
import io
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import _device, _random

__all__ = [
    "FITTED_STATE",
    "UNSET",
    "Field",
    "Loading",
    "Stored",
    "available_or_cpu",
    "names_stored_as",
    "pickled",
    "to_cpu",
    "unpickled",
]


class Stored(enum.Enum):
    """How a fitted attribute is pickled and saved."""

    JSON = "json"
    TENSORS = "tensors"
    GENERATOR = "generator"
    ADAPTER = "adapter"
    DERIVED = "derived"


class _Unset(enum.Enum):
    UNSET = "unset"


#: What a field's ``decode`` returns for an attribute the loaded estimator leaves unset
#: (``feature_names_in_`` of a model fitted on an array).
UNSET = _Unset.UNSET


@dataclasses.dataclass(frozen=True)
class Loading:
    """What a field's ``decode`` may use while a model file is loaded.

    Parameters
    ----------
    estimator : ACTEncoder
        The estimator being rebuilt: its parameters, its adapter, and the fields
        declared before the one decoded.
    device : torch.device
        Where the loaded model lives.
    saved_device : torch.device
        Where it was fitted.
    networks : mapping of str to torch.nn.Module or None
        The networks rebuilt from the saved parameters, by field name, awaiting their
        weights.
    """

    estimator: Any
    device: torch.device
    saved_device: torch.device
    networks: Mapping[str, nn.Module | None]


def _unchanged(value: Any) -> Any:
    return value


def _as_saved(value: Any, loading: Loading) -> Any:
    return value


@dataclasses.dataclass(frozen=True)
class Field:
    """One fitted attribute and how it is kept.

    Parameters
    ----------
    name : str
        The attribute.
    stored : Stored
        How it is pickled and saved.
    key : str, default=""
        Its name in the model file (``skact.json``'s ``"fitted"`` for ``JSON``,
        ``tensors.pt`` for ``TENSORS`` and ``GENERATOR``); empty: ``name``.
    check : callable or None, default=None
        ``check(value, fitted) -> bool``: whether a value read from a file (``fitted``:
        the JSON fields, the ones declared before this one already checked) is one
        that skact writes. Required for ``JSON`` fields: :func:`skact.load` trusts
        nothing in a file. ``TENSORS`` fields are checked by
        :mod:`skact._persistence` against the networks, or by this.
    problem : str, default="{key}={value!r}"
        What a failed check says, formatted with ``key`` and ``value``.
    encode : callable, default=identity
        The attribute's value -> what the file holds (JSON values; tensors on the CPU).
    decode : callable, default=identity
        ``decode(value, loading) -> attribute`` for a checked file value (``None``
        for ``DERIVED`` fields) and a :class:`Loading`; :data:`UNSET` leaves the
        attribute unset.
    default : callable or None, default=None
        ``default(values) -> value`` for files and pickles of older skact that lack
        the field (``values``: what they hold, by file key or attribute name; the
        two agree for every field a default reads). None: required.
    optional : bool, default=False
        A fit may leave it unset (``feature_names_in_``); a file then holds None.
    copied : bool, default=True
        Deep-copied before a fit that continues the model, to restore if the fit
        fails. False: kept by reference (a fit replaces it, never changes it).
    """

    name: str
    stored: Stored
    key: str = ""
    check: Callable[[Any, Mapping[str, Any]], bool] | None = None
    problem: str = "{key}={value!r}"
    encode: Callable[[Any], Any] = _unchanged
    decode: Callable[[Any, Loading], Any] = _as_saved
    default: Callable[[Mapping[str, Any]], Any] | None = None
    optional: bool = False
    copied: bool = True

    @property
    def file_key(self) -> str:
        """The field's name in the model file."""
        return self.key or self.name


# ----------------------------------------------------------------------- JSON fields


def _at_least(least: int) -> Callable[[Any, Mapping[str, Any]], bool]:
    def check(value: Any, fitted: Mapping[str, Any]) -> bool:
        return type(value) is int and value >= least

    return check


def _as_int(value: Any, loading: Loading) -> int:
    return int(value)


def _numbers(value: Any, fitted: Mapping[str, Any]) -> bool:
    return isinstance(value, list) and all(type(v) in (int, float) for v in value)


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def _as_floats(values: Any, loading: Loading) -> list[float]:
    return _floats(values)


def _nan_per_epoch(values: Mapping[str, Any]) -> list[float]:
    # Files and pickles of skact before the monitor: no estimate in any epoch.
    return [math.nan] * len(values["loss_curve_"])


def _none(values: Mapping[str, Any]) -> None:
    return None


def _names(value: Any, fitted: Mapping[str, Any]) -> bool:
    return value is None or (
        isinstance(value, list)
        and len(value) == fitted["n_features_in_"]
        and all(isinstance(n, str) for n in value)
    )


def _strings(names: Any) -> list[str] | None:
    return None if names is None else [str(n) for n in names]


def _name_array(names: Any, loading: Loading) -> Any:
    return UNSET if names is None else np.asarray(names, dtype=object)


#: What ``monitor_name_`` can hold.
_MONITORS = (None, "few_shot_1nn_accuracy", "loo_1nn_accuracy", "effective_rank")


def _monitor_name(value: Any, fitted: Mapping[str, Any]) -> bool:
    return value in _MONITORS


def _device_name(value: Any, fitted: Mapping[str, Any]) -> bool:
    # torch.device raises for a string that names no device: a corrupt file.
    return isinstance(value, str) and torch.device(value) is not None


def _loading_device(value: Any, loading: Loading) -> torch.device:
    return loading.device


def _partial_fit_start(value: Any, fitted: Mapping[str, Any]) -> bool:
    return value is None or (type(value) is int and 0 <= value <= fitted["step"])


def _network_name(value: Any, fitted: Mapping[str, Any]) -> bool:
    # Whether the adapter has it is checked once the adapter is read.
    return value is None or isinstance(value, str)


#: The numpy bit generators a saved shuffle state may name.
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _bit_generator(state: Any) -> np.random.Generator:
    name = state["bit_generator"]
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown numpy bit generator {name!r}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _shuffle_state(value: Any, fitted: Mapping[str, Any]) -> bool:
    # A state numpy refuses raises here: a corrupt file, before any tensor is read.
    return _bit_generator(value) is not None


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return dict(rng.bit_generator.state)


def _rng(state: Any, loading: Loading) -> np.random.Generator:
    return _bit_generator(state)


# -------------------------------------------------------------------- derived fields


def _no_callbacks(value: Any, loading: Loading) -> list[Any]:
    return []  # the clones that ran are not saved: they may hold the user's code


def _adapter_attribute(name: str) -> Callable[[Any, Loading], Any]:
    def decode(value: Any, loading: Loading) -> Any:
        return loading.estimator._adapter.fitted_attributes().get(name, UNSET)

    return decode


def _architecture(value: Any, loading: Loading) -> dict[str, Any]:
    return dict(loading.estimator._architecture())


# ---------------------------------------------------------------------- tensor fields


def to_cpu(value: Any) -> Any:
    """A copy of a nested state with every tensor on the CPU.

    Parameters
    ----------
    value : Tensor, dict, list, tuple or any
        A state, such as an optimiser's ``state_dict()``.

    Returns
    -------
    The same structure, each tensor detached and on the CPU.

    Examples
    --------
    >>> to_cpu({"w": [torch.ones(1)]})
    {'w': [tensor([1.])]}
    """
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


def _weights(module: nn.Module | None) -> dict[str, Tensor] | None:
    return None if module is None else to_cpu(module.state_dict())


def _with_weights(name: str, value: Any, loading: Loading, what: str) -> nn.Module | None:
    module = loading.networks[name]
    if module is None:
        return None
    try:
        module.load_state_dict(value)
    except RuntimeError as exc:
        raise ValueError(
            f"the saved {what} weights do not fit the network built for them: {exc}"
        ) from None
    return module


def _encoder(value: Any, loading: Loading) -> nn.Module:
    module = _with_weights("encoder_", value, loading, "encoder")
    assert module is not None  # every model has an encoder
    # As the adapter runs it fastest (channels-last images, ...), as fit placed it.
    return loading.estimator._adapter.place(module, loading.device).eval()


def _projector(value: Any, loading: Loading) -> nn.Module | None:
    module = _with_weights("projector_", value, loading, "projection head")
    return None if module is None else module.to(loading.device).eval()


def _adversary(state: Any, loading: Loading) -> Any:
    if state is None or not isinstance(state.get("state"), Tensor):
        return state
    estimate = state["state"]
    # A non-finite G, which older skact saved after a divergence, is dropped: training
    # starts it again from its next batch, as the adversary itself does.
    finite = bool(torch.isfinite(estimate).all())
    return {**state, "state": estimate.to(loading.device) if finite else None}


def _generator_cpu(state: Tensor) -> Tensor:
    return state.cpu()


def _generator(state: Any, loading: Loading) -> Tensor:
    return _random.generator_state_for(
        state, loading.saved_device, loading.device, loading.estimator._shuffle_rng
    )


_NOT_NUMBERS = "{key} is not a list of numbers"

#: Every fitted attribute of ACTEncoder, with how it is kept. The ``JSON`` fields are
#: written, and checked on load, in this order (a check may read the fields before it);
#: the ``TENSORS`` and ``GENERATOR`` fields likewise; decoding follows this order too
#: (the generator after the shuffle state it may be reseeded from).
FITTED_STATE: tuple[Field, ...] = (
    # What the estimator saw and did.
    Field("n_features_in_", Stored.JSON, check=_at_least(1), encode=int, decode=_as_int),
    Field(
        "feature_names_in_",  # sklearn's: set only for DataFrames with string names
        Stored.JSON,
        check=_names,
        problem="{key} is not one name per feature",
        encode=_strings,
        decode=_name_array,
        optional=True,
    ),
    Field("n_iter_", Stored.JSON, check=_at_least(0), encode=int, decode=_as_int),
    Field(
        "loss_curve_",
        Stored.JSON,
        check=_numbers,
        problem=_NOT_NUMBERS,
        encode=_floats,
        decode=_as_floats,
    ),
    Field(
        "validation_loss_curve_",
        Stored.JSON,
        check=_numbers,
        problem=_NOT_NUMBERS,
        encode=_floats,
        decode=_as_floats,
    ),
    Field(
        "monitor_curve_",
        Stored.JSON,
        check=_numbers,
        problem=_NOT_NUMBERS,
        encode=_floats,
        decode=_as_floats,
        default=_nan_per_epoch,
    ),
    Field("monitor_name_", Stored.JSON, check=_monitor_name, default=_none),
    Field(
        "_n_components_out",
        Stored.JSON,
        key="n_components_out",
        check=_at_least(1),
        encode=int,
        decode=_as_int,
    ),
    Field(
        "device_",
        Stored.JSON,
        key="device",
        check=_device_name,
        encode=str,
        decode=_loading_device,
    ),
    # Training state that warm_start and partial_fit continue.
    Field("_step", Stored.JSON, key="step", check=_at_least(0), encode=int, decode=_as_int),
    Field(
        "_partial_fit_start",
        Stored.JSON,
        key="partial_fit_start",
        check=_partial_fit_start,
        default=_none,
    ),
    # The built-in network "auto" resolved to (None: the caller's encoder).
    Field("_network_name", Stored.JSON, key="network", check=_network_name, default=_none),
    Field(
        "_shuffle_rng",
        Stored.JSON,
        key="shuffle_rng",
        check=_shuffle_state,
        encode=_rng_state,
        decode=_rng,
    ),
    # The clones of `callbacks` the last call ran: not saved (they may hold your code);
    # a loaded model has none.
    Field(
        "callbacks_",
        Stored.DERIVED,
        decode=_no_callbacks,
        default=lambda values: [],
        copied=False,
    ),
    # The input and the networks.
    Field("_adapter", Stored.ADAPTER),
    Field("categories_", Stored.DERIVED, decode=_adapter_attribute("categories_")),
    Field("is_categorical_", Stored.DERIVED, decode=_adapter_attribute("is_categorical_")),
    Field("_fitted_architecture", Stored.DERIVED, decode=_architecture),
    Field("encoder_", Stored.TENSORS, key="encoder", encode=_weights, decode=_encoder),
    Field(
        "projector_", Stored.TENSORS, key="projector", encode=_weights, decode=_projector
    ),
    Field("_optimizer_state", Stored.TENSORS, key="optimizer", encode=to_cpu),
    Field(
        "_adversary_state",
        Stored.TENSORS,
        key="adversary",
        encode=to_cpu,
        decode=_adversary,
    ),
    Field(
        "_generator_state",
        Stored.GENERATOR,
        key="generator",
        encode=_generator_cpu,
        decode=_generator,
    ),
)


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
    return tuple(field.name for field in FITTED_STATE if field.stored is stored)


# -------------------------------------------------------------------------- pickling

#: Where :func:`pickled` puts the ``TENSORS`` fields, saved by :func:`torch.save`.
_TORCH_PAYLOAD = "_torch_payload"


def pickled(state: dict[str, Any]) -> dict[str, Any]:
    """An estimator's ``__dict__`` ready for pickle (``ACTEncoder.__getstate__``).

    The ``TENSORS`` fields go through :func:`torch.save`, so that their storage can be
    mapped to the device in use when unpickled; the ``GENERATOR`` fields become numpy
    arrays (a CPU ByteTensor that torch would map to CUDA).

    Parameters
    ----------
    state : dict
        A copy of the estimator's ``__dict__``; changed in place.

    Returns
    -------
    dict
        ``state``.
    """
    tensors = {
        field.name: state.pop(field.name)
        for field in FITTED_STATE
        if field.stored is Stored.TENSORS and field.name in state
    }
    if tensors:
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        state[_TORCH_PAYLOAD] = buffer.getvalue()
    for field in FITTED_STATE:
        if field.stored is Stored.GENERATOR and field.name in state:
            state[field.name] = state[field.name].numpy().copy()
    return state


def unpickled(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`pickled` (``ACTEncoder.__setstate__``).

    Fields a pickle of older skact lacks get their defaults; the tensors go to the
    device they were fitted on when this machine has it, else the CPU.

    Parameters
    ----------
    state : dict
        What :func:`pickled` gave; changed in place.

    Returns
    -------
    dict
        ``state``, ready to become the estimator's ``__dict__``.
    """
    payload = state.pop(_TORCH_PAYLOAD, None)
    if "n_iter_" in state:  # fitted, maybe by a skact that lacked some fields
        for field in FITTED_STATE:
            if field.default is not None and field.name not in state:
                state[field.name] = field.default(state)
    if payload is not None:
        saved = state.get("device_", torch.device("cpu"))
        device = state["device_"] = available_or_cpu(saved)
        state.update(
            torch.load(io.BytesIO(payload), map_location=device, weights_only=False)
        )
        for field in FITTED_STATE:
            if field.stored is Stored.GENERATOR and field.name in state:
                # A tensor in the payload (mapped to ``device``) from older skact.
                generator_state = torch.as_tensor(state[field.name]).cpu()
                state[field.name] = _random.generator_state_for(
                    generator_state, saved, device, state["_shuffle_rng"]
                )
    return state


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
    if device.type == "mps" and _device.mps_available():
        return device
    return torch.device("cpu")
