"""Save and load a fitted ACTEncoder without pickle: JSON plus tensors.

Pickle and joblib run code from the file they load. A ``.skact`` file cannot: it is a
zip archive of two members,

``skact.json``
    The format name and version, the skact and torch versions that wrote it, the
    estimator's parameters, its fitted attributes, and the input adapter's kind and
    state (arrays replaced by references into ``tensors.pt``), and the ``set_output``
    container.
``tensors.pt``
    ``torch.save`` of tensors and plain values only (the networks' state dicts, the
    optimiser's and adversary's state, the adapter's arrays), read back with
    ``torch.load(weights_only=True)``, which refuses every other Python object.

The networks are rebuilt from the parameters and then given the saved weights. A
user-supplied ``encoder`` module or callable is code, so it is not saved: its weights
are, and :func:`load` needs the same architecture passed as ``encoder=``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import warnings
import zipfile
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from . import _training
from ._images import ImageAdapter
from ._inputs import TabularAdapter
from ._tabular_mixed import MixedTableAdapter
from .augment.image import ImageAugment

if TYPE_CHECKING:
    from ._encoder import ACTEncoder

__all__ = ["FORMAT_VERSION", "ModelFileError", "load", "save"]

#: Name written into every file, checked on load.
FORMAT = "skact.ACTEncoder"
#: Version of the layout below; bump it when a reader of the old layout would misread.
FORMAT_VERSION = 1

_CONFIG = "skact.json"
_TENSORS = "tensors.pt"

#: Input adapters by ``kind``: each has ``state_dict()`` and ``from_state_dict(state)``.
ADAPTERS: dict[str, Any] = {
    cls.kind: cls for cls in (TabularAdapter, MixedTableAdapter, ImageAdapter)
}

#: Fitted state written to the file, or rebuilt from it (the attributes ``fit`` sets).
SAVED_ATTRIBUTES = frozenset(
    {
        "n_features_in_",
        "feature_names_in_",
        "n_iter_",
        "loss_curve_",
        "validation_loss_curve_",
        "device_",
        "encoder_",
        "projector_",
        "_adapter",
        "_n_components_out",
        "_optimizer_state",
        "_adversary_state",
        "_generator_state",
        "_shuffle_rng",
        "_step",
        "categories_",
        "is_categorical_",
        "_fitted_architecture",  # rebuilt from the saved parameters
    }
)

class ModelFileError(ValueError):
    """A model file that :func:`skact.load` refuses: not a skact model, damaged, too
    large for what it claims to hold, or tampered with.

    Attributes
    ----------
    path : str
        The file that was read.
    member : str or None
        The archive member at fault (``"skact.json"`` or ``"tensors.pt"``), when one is.
    """

    def __init__(self, message: str, *, path: str, member: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.member = member


_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def save(estimator: ACTEncoder, path: str | os.PathLike[str]) -> None:
    """Write a fitted estimator to ``path`` (see the module docstring for the layout).

    The file is written to a temporary name and then renamed, so an interrupted save
    never leaves a truncated file in place of a good one.

    Parameters
    ----------
    estimator : ACTEncoder
        A fitted estimator.
    path : str or path-like
        Destination file.
    """
    check_is_fitted(estimator)
    params, custom_encoder = _params_to_json(estimator.get_params(deep=False))
    arrays: dict[str, Tensor] = {}
    adapter: Any = estimator._adapter  # InputAdapter with state_dict()
    fitted = {
        "n_features_in_": int(estimator.n_features_in_),
        "feature_names_in_": (
            [str(n) for n in estimator.feature_names_in_]
            if hasattr(estimator, "feature_names_in_")
            else None
        ),
        "n_iter_": int(estimator.n_iter_),
        "loss_curve_": [float(v) for v in estimator.loss_curve_],
        "validation_loss_curve_": [float(v) for v in estimator.validation_loss_curve_],
        "n_components_out": int(estimator._n_components_out),
        "device": str(estimator.device_),
        "step": int(estimator._step),
        "shuffle_rng": estimator._shuffle_rng.bit_generator.state,
    }
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skact_version": _skact_version(),
        "torch_version": torch.__version__,
        "params": params,
        "custom_encoder": custom_encoder,
        "adapter": {
            "kind": adapter.kind,
            "state": _split_arrays(adapter.state_dict(), "adapter", arrays),
        },
        "fitted": fitted,
        "output": getattr(estimator, "_sklearn_output_config", {}).get("transform"),
    }
    projector = estimator.projector_
    tensors = {
        "encoder": _to_cpu(estimator.encoder_.state_dict()),
        "projector": None if projector is None else _to_cpu(projector.state_dict()),
        "optimizer": _to_cpu(estimator._optimizer_state),
        "adversary": _to_cpu(estimator._adversary_state),
        "generator": estimator._generator_state.cpu(),
        "arrays": arrays,
    }
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".skact-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file, zipfile.ZipFile(file, "w") as archive:
            archive.writestr(_CONFIG, json.dumps(config, indent=1))
            archive.writestr(_TENSORS, buffer.getvalue())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    encoder: Any = None,
) -> ACTEncoder:
    """Load an estimator written by :meth:`ACTEncoder.save`, without running code from it.

    Parameters
    ----------
    path : str or path-like
        A file written by :meth:`ACTEncoder.save`.
    device : str, torch.device or None, default=None
        Where the loaded networks live; also becomes the ``device`` parameter. None:
        the device they were saved from when it is available here, else the CPU (the
        ``device`` parameter is kept as saved).
    encoder : torch.nn.Module or callable, default=None
        Only for models fitted with a user-supplied ``encoder``, whose code is not in
        the file: the same architecture (a module or a callable, as passed to
        ``ACTEncoder``); it receives the saved weights.

    Returns
    -------
    ACTEncoder
        The fitted estimator: ``transform`` gives the saved model's output, and
        ``warm_start`` or ``partial_fit`` continue its training.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not a skact file, a newer format version, a pickle payload or other Python
        objects among the tensors, or ``encoder`` missing or not matching the weights.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import skact
    >>> X = np.random.default_rng(0).normal(size=(64, 5))
    >>> enc = skact.ACTEncoder(4, hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "encoder.skact")
    >>> enc.fit(X).save(path)
    >>> np.array_equal(skact.load(path).transform(X), enc.transform(X))
    True
    """
    from ._encoder import ACTEncoder

    config, raw = _read_archive(path)
    corrupt = (
        f"{os.fspath(path)!r} is corrupt or truncated: {_TENSORS} is not readable "
        "({}). Save the model again, or copy the file again."
    )
    try:
        tensors = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # A torch archive or a pickle stream (protocol 2 and later begin with 0x80)
        # that holds more than tensors is refused as such; other bytes are damage.
        if not (raw[:1] == b"\x80" or zipfile.is_zipfile(io.BytesIO(raw))):
            raise ValueError(corrupt.format("not a torch archive")) from None
        raise ValueError(
            f"refusing to load {os.fspath(path)!r}: its {_TENSORS} holds Python objects "
            "other than tensors and plain values (a pickle payload, which could run "
            "code when loaded). skact.load never unpickles code; do not open this file "
            "with pickle, joblib or torch.load(weights_only=False) unless you trust "
            "who made it."
        ) from None
    except (RuntimeError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(corrupt.format(f"{type(exc).__name__}: {exc}")) from None
    try:
        return _rebuild(ACTEncoder, config, tensors, device, encoder)
    except (KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise ValueError(
            f"{os.fspath(path)!r} is incomplete or corrupt ({type(exc).__name__}: {exc})."
        ) from None


# ------------------------------------------------------------------------ reading


def _read_archive(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    """The checked configuration and the raw tensor bytes of a ``.skact`` file."""
    name = os.fspath(path)
    try:
        with zipfile.ZipFile(name) as archive:
            members = set(archive.namelist())
            if _CONFIG not in members or _TENSORS not in members:
                raise ValueError(_not_skact(name, f"it lacks {_CONFIG} or {_TENSORS}"))
            config = json.loads(archive.read(_CONFIG))
            raw = archive.read(_TENSORS)
    except (zipfile.BadZipFile, EOFError) as exc:
        with open(name, "rb") as f:
            starts_as_zip = f.read(4) == b"PK\x03\x04"
        if not starts_as_zip:
            raise ValueError(_not_skact(name, "not a zip archive")) from None
        raise ValueError(
            f"{name!r} is corrupt or truncated (a damaged zip archive: {exc}). Save the "
            "model again, or copy the file again."
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name!r} is corrupt: {_CONFIG}: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(_not_skact(name, f"{_CONFIG} names another format"))
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{name!r} is corrupt: format_version={version!r}.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{name!r} was saved by skact {config.get('skact_version', '?')} in format "
            f"version {version}; this skact ({_skact_version()}) reads format versions "
            f"up to {FORMAT_VERSION}. Upgrade skact to load it."
        )
    return config, raw


def _not_skact(name: str, why: str) -> str:
    return (
        f"{name!r} is not a model saved by ACTEncoder.save ({why}). A file written by "
        "pickle or joblib must be loaded with those, which run code from the file: "
        "only do that for files you trust."
    )


def _rebuild(
    cls: type[ACTEncoder],
    config: dict[str, Any],
    tensors: dict[str, Any],
    device: str | torch.device | None,
    encoder: Any,
) -> ACTEncoder:
    """A fitted estimator from a checked configuration and its tensors."""
    params = _params_from_json(config["params"])
    custom = config["custom_encoder"]
    if custom is not None and encoder is None:
        raise ValueError(
            f"this model was fitted with a user-supplied encoder ({custom}); its code is "
            "not saved, only its weights. Pass the same architecture: "
            "skact.load(path, encoder=<module or callable>)."
        )
    if custom is None and encoder is not None:
        raise ValueError(
            f"encoder= is only for models fitted with a user-supplied encoder; this one "
            f"used encoder={params['encoder']!r}."
        )
    if encoder is not None:
        params["encoder"] = encoder
    if device is not None:
        params["device"] = device
    estimator = cls(**params)
    estimator._validate_params()
    if config.get("output") is not None:
        estimator.set_output(transform=config["output"])

    fitted = config["fitted"]
    saved_device = torch.device(fitted["device"])
    if device is not None:
        target = _training.resolve_device(device)
    else:
        target = _available_or_cpu(saved_device)

    adapter_spec = config["adapter"]
    if adapter_spec["kind"] not in ADAPTERS:
        raise ValueError(
            f"unknown input adapter kind {adapter_spec['kind']!r}; this skact knows "
            f"{sorted(ADAPTERS)}. Upgrade skact to load this model."
        )
    adapter = ADAPTERS[adapter_spec["kind"]].from_state_dict(
        _join_arrays(adapter_spec["state"], tensors["arrays"])
    )
    estimator._adapter = adapter  # _make_encoder reads it (embedding front-end)
    with torch.random.fork_rng(devices=[]):
        network = estimator._make_encoder(adapter.input_shape)
        width = int(fitted["n_components_out"])
        projector = estimator._make_projector(width)
    _load_weights(network, tensors["encoder"], "encoder")
    if projector is not None:
        _load_weights(projector, tensors["projector"], "projection head")

    estimator.device_ = target
    estimator._adapter = adapter
    estimator._n_components_out = width
    estimator.encoder_ = estimator._placed(network).eval()
    estimator.projector_ = projector.to(target).eval() if projector is not None else None
    estimator._optimizer_state = tensors["optimizer"]
    adversary = tensors["adversary"]
    if adversary is not None and isinstance(adversary.get("state"), Tensor):
        adversary = {**adversary, "state": adversary["state"].to(target)}
    estimator._adversary_state = adversary
    estimator._shuffle_rng = _bit_generator(fitted["shuffle_rng"])
    estimator._generator_state = _training.generator_state_for(
        tensors["generator"], saved_device, target, estimator._shuffle_rng
    )
    estimator._step = int(fitted["step"])
    estimator._fitted_architecture = estimator._architecture()
    estimator.n_iter_ = int(fitted["n_iter_"])
    estimator.loss_curve_ = [float(v) for v in fitted["loss_curve_"]]
    estimator.validation_loss_curve_ = [float(v) for v in fitted["validation_loss_curve_"]]
    estimator.n_features_in_ = int(fitted["n_features_in_"])
    estimator._expose_adapter_attributes()
    if fitted["feature_names_in_"] is not None:
        estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    return estimator


def _load_weights(module: torch.nn.Module, state: dict[str, Tensor], what: str) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"the saved {what} weights do not fit the network built for them: {exc}"
        ) from None


def _available_or_cpu(device: torch.device) -> torch.device:
    """``device`` when this machine has it, else the CPU (a CUDA model on a laptop)."""
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index or 0
        return device if index < torch.cuda.device_count() else torch.device("cuda")
    if device.type == "mps" and _training._mps_available():
        return device
    return torch.device("cpu")


def _bit_generator(state: dict[str, Any]) -> np.random.Generator:
    name = state["bit_generator"]
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown numpy bit generator {name!r}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


# ------------------------------------------------------------------ JSON conversions

#: How an ImageAugment parameter is marked in the saved parameters.
_AUGMENT_KEY = "__image_augment__"


def _params_to_json(params: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """JSON-able parameters, and the qualified name of a user encoder (else None)."""
    out: dict[str, Any] = {}
    custom = None
    for name, value in params.items():
        if name == "encoder" and not isinstance(value, str):
            kind = type(value) if isinstance(value, torch.nn.Module) else value
            module = getattr(kind, "__module__", "?")
            custom = f"{module}.{getattr(kind, '__qualname__', type(kind).__qualname__)}"
            out[name] = None
        elif name == "random_state" and isinstance(value, np.random.RandomState):
            warnings.warn(
                "random_state is a RandomState instance, which is not saved; the loaded "
                "estimator has random_state=None (this does not change transform).",
                UserWarning,
                stacklevel=3,
            )
            out[name] = None
        elif isinstance(value, torch.device):
            out[name] = str(value)
        elif isinstance(value, ImageAugment):
            augment = {
                k: _json_value(f"{name}.{k}", v) for k, v in value.get_params().items()
            }
            out[name] = {_AUGMENT_KEY: augment}
        else:
            out[name] = _json_value(name, value)
    return out, custom


def _json_value(name: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_json_value(name, v) for v in value]
    if isinstance(value, np.ndarray):  # e.g. a boolean mask of categorical features
        return _json_value(name, value.tolist())
    raise TypeError(
        f"parameter {name}={value!r} ({type(value).__name__}) cannot be saved; "
        "ACTEncoder.save stores parameters as JSON (numbers, strings, lists)."
    )


def _params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    # JSON has no tuples; the estimator's sequence parameters are tuples (an array
    # parameter comes back as a tuple too).
    def value(v: Any) -> Any:
        if isinstance(v, list):
            return tuple(v)
        if isinstance(v, dict) and _AUGMENT_KEY in v:
            return ImageAugment(**{k: value(a) for k, a in v[_AUGMENT_KEY].items()})
        return v

    return {k: value(v) for k, v in params.items()}


def _split_arrays(value: Any, key: str, arrays: dict[str, Tensor]) -> Any:
    """Replace the arrays and tensors in ``value`` by references into ``arrays``."""
    if isinstance(value, dict):
        return {str(k): _split_arrays(v, f"{key}.{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_arrays(v, f"{key}.{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, Tensor):
        arrays[key] = value.detach().cpu()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            arrays[key] = torch.from_numpy(np.ascontiguousarray(value))
            return {"__ndarray__": key}
        if value.dtype.kind in "OUS":
            items = [
                _json_value(key, v.item() if isinstance(v, np.generic) else v)
                for v in value.ravel()
            ]
            return {"__objects__": items, "dtype": value.dtype.kind, "shape": value.shape}
    if isinstance(value, np.generic):
        return value.item()
    return _json_value(key, value)


def _join_arrays(value: Any, arrays: dict[str, Tensor]) -> Any:
    """Inverse of :func:`_split_arrays`."""
    if isinstance(value, dict):
        if "__tensor__" in value:
            return arrays[value["__tensor__"]]
        if "__ndarray__" in value:
            return arrays[value["__ndarray__"]].numpy()
        if "__objects__" in value:
            dtype = object if value["dtype"] == "O" else str
            return np.asarray(value["__objects__"], dtype=dtype).reshape(value["shape"])
        return {k: _join_arrays(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_arrays(v, arrays) for v in value]
    return value


def _to_cpu(value: Any) -> Any:
    """A copy of a nested state with every tensor on the CPU."""
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _skact_version() -> str:
    from . import __version__

    return __version__
