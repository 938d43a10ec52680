"""The whole feature extractor, preprocessing included, as an ONNX file or a
``torch.export`` program.

``encoder_`` alone reads what the adapter prepares (standardised rows, embedded codes,
normalised views), not what a user has: exported alone it takes the wrong input without
an error. The exported program is ``adapter.preprocessing_module()`` followed by a CPU
float32 copy of ``encoder_``, traced once with ``torch.export`` (a dynamic batch axis);
the ONNX file is that program converted by ``torch.onnx.export``.

What the program's inputs are, per kind of input (:func:`export_inputs` says it for a
fitted model, and ``export`` writes it beside the file as JSON):

- numeric tables: ``X``, float64 ``(n, n_features)``;
- mixed tables: ``numeric``, float64 ``(n, n_numeric)`` with NaN for a gap, and
  ``codes``, int64 ``(n, n_categorical)`` (see
  :meth:`skact.adapters.mixed.MixedTableAdapter.input_codes`); an input without
  columns is left out;
- images: ``images``, uint8 ``(n, H, W, C)``, or ``(n, H, W)`` for one channel, at the
  fitted ``image_size``.

The output is ``features``, float32 ``(n, n_components)``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ._atomic import atomic_write

if TYPE_CHECKING:
    from ._encoder import ACTEncoder

__all__ = ["EXPORT_FORMATS", "ExportError", "export", "export_inputs"]

#: Export formats by file suffix.
EXPORT_FORMATS = {".onnx": "onnx", ".pt2": "pt2"}
#: The suffix of the JSON file written beside the exported one.
INPUTS_SUFFIX = ".inputs.json"
#: Rows of the example traced (0 and 1 would be specialised by torch.export).
_EXAMPLE_ROWS = 2


class ExportError(ValueError):
    """A part of the fitted model cannot be exported; the message names the part."""


class _FeatureExtractor(nn.Module):
    """Preprocessing then encoder: raw-ish input to features, as ``transform``."""

    def __init__(self, preprocessing: nn.Module, encoder: nn.Module) -> None:
        super().__init__()
        self.preprocessing = preprocessing
        self.encoder = encoder

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.encoder(self.preprocessing(*inputs)).float()


def export_inputs(estimator: ACTEncoder) -> dict[str, Any]:
    """What the exported program of ``estimator`` takes and returns, JSON-able.

    Parameters
    ----------
    estimator : ACTEncoder
        Fitted.

    Returns
    -------
    dict
        ``kind``, ``inputs`` (per input, in order: ``name``, ``dtype``, ``shape`` with
        ``"n"`` for the batch axis, and ``columns`` for tables), ``output`` and, for
        mixed tables, ``categorical`` (per categorical column: ``name``,
        ``categories``, ``missing_code``); for images, ``value_range``.
    """
    adapter = estimator._adapter
    names = getattr(estimator, "feature_names_in_", None)
    columns = None if names is None else [str(c) for c in names]
    out: dict[str, Any] = {"kind": adapter.kind, **adapter.input_spec(columns)}
    out["output"] = {
        "name": "features",
        "dtype": "float32",
        "shape": ["n", int(estimator._n_features_out)],
    }
    return out


def _example(spec: dict[str, Any]) -> Tensor:
    shape = [_EXAMPLE_ROWS if s == "n" else int(s) for s in spec["shape"]]
    return torch.zeros(shape, dtype=getattr(torch, spec["dtype"]))


def export_format(path: str | os.PathLike[str], format: str | None) -> str:
    """The format to write: ``format`` if given, else the one ``path``'s suffix names.

    Parameters
    ----------
    path : str or path-like
    format : {"onnx", "pt2"} or None

    Returns
    -------
    str
    """
    if format is not None:
        if format not in EXPORT_FORMATS.values():
            raise ValueError(
                f"format must be 'onnx' or 'pt2' (or None: from the suffix); got {format!r}"
            )
        return format
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise ValueError(
            f"cannot tell the export format from {os.fspath(path)!r}: use a .onnx or "
            ".pt2 suffix, or pass format='onnx' or format='pt2'"
        )
    return EXPORT_FORMATS[suffix]


def _exported_program(estimator: ACTEncoder) -> tuple[Any, dict[str, Any]]:
    """The fitted model traced by ``torch.export``, and its inputs' description."""
    inputs = export_inputs(estimator)
    specs = inputs["inputs"]
    preprocessing = estimator._adapter.preprocessing_module()
    examples = tuple(_example(spec) for spec in specs)
    batch = torch.export.Dim("n")
    dynamic = tuple({0: batch} for _ in specs)
    try:
        torch.export.export(preprocessing.eval(), examples, dynamic_shapes=dynamic)
    except Exception as exc:  # a bug of skact's, not the user's: say so
        raise ExportError(
            f"the {inputs['kind']} preprocessing ({type(preprocessing).__name__}) could "
            f"not be traced by torch.export ({type(exc).__name__}: {_first_line(exc)}); "
            "please report this to skact's issue tracker"
        ) from exc
    encoder = copy.deepcopy(estimator.encoder_).to(device="cpu", dtype=torch.float32)
    encoder.requires_grad_(False)  # features without a graph, also where it is loaded
    # Image networks are placed channels_last; torch.export.load warns about weights
    # whose strides are not contiguous.
    # (torch's stubs list no memory_format overload for Module.to, which has one.)
    encoder.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    model = _FeatureExtractor(preprocessing, encoder).eval()
    try:
        with torch.no_grad():
            # The varargs of forward are one tuple: its shapes are one tuple too.
            program = torch.export.export(model, examples, dynamic_shapes=(dynamic,))
    except Exception as exc:
        raise ExportError(_encoder_failure(estimator, exc)) from exc
    return program, inputs


def _encoder_failure(estimator: ACTEncoder, exc: BaseException) -> str:
    spec = estimator.encoder
    if isinstance(spec, str):
        what = f"the built-in {spec!r} encoder"
    else:  # a module's repr spans lines: its class names it
        given = f"{type(spec).__name__}(...)" if isinstance(spec, nn.Module) else None
        given = given or getattr(spec, "__qualname__", None) or repr(spec)
        what = (
            f"the encoder network from encoder={given} "
            f"(a {type(estimator.encoder_).__name__})"
        )
    return (
        f"{what} cannot be exported: torch.export could not trace its forward "
        f"({type(exc).__name__}: {_first_line(exc)}). An exportable forward uses torch "
        "operations only: no numpy, no .item() or .tolist(), no Python branch on a "
        "tensor's values. Make it so and fit again (or load the weights into such a "
        "module), or compute the features with transform."
    )


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip() if lines else "no message"


#: torch's ONNX exporter logs a warning for each torchvision operator it cannot
#: register when torchvision is not installed: about torch, not about the model.
_TORCH_ONNX_REGISTRATION = "torch.onnx._internal.exporter._registration"


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Raise logger ``name`` to at least ERROR while the block runs."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def export(
    estimator: ACTEncoder, path: str | os.PathLike[str], format: str | None = None
) -> dict[str, Any]:
    """Write ``estimator``'s feature extractor to ``path``, and its inputs beside it.

    See :meth:`skact.ACTEncoder.export`.

    Returns
    -------
    dict
        What :func:`export_inputs` returns, also written to ``path`` +
        ``".inputs.json"``.
    """
    path = Path(os.fspath(path))
    kind = export_format(path, format)
    if kind == "onnx":
        _require_onnx()
    program, inputs = _exported_program(estimator)
    if kind == "pt2":
        with atomic_write(path) as file:
            torch.export.save(program, file)
    else:
        names = [spec["name"] for spec in inputs["inputs"]]
        try:
            with warnings.catch_warnings(), _quiet(_TORCH_ONNX_REGISTRATION):
                # torch's own deprecation inside the exporter: nothing a user can change.
                warnings.filterwarnings("ignore", ".*LeafSpec", FutureWarning)
                onnx_program = torch.onnx.export(
                    program,
                    input_names=names,
                    output_names=["features"],
                    dynamo=True,
                    verbose=False,
                    optimize=True,
                )
        except Exception as exc:
            raise ExportError(
                f"torch.onnx.export could not convert the traced model to ONNX "
                f"({type(exc).__name__}: {_first_line(exc)}); the .pt2 format "
                "(format='pt2') keeps torch's own program"
            ) from exc
        assert onnx_program is not None  # the dynamo exporter always returns it
        proto = onnx_program.model_proto
        for value in [*proto.graph.input, *proto.graph.output]:
            value.type.tensor_type.shape.dim[0].dim_param = "n"  # not torch's "s21"
        with atomic_write(path) as file:
            file.write(proto.SerializeToString())
    described = path.with_name(path.name + INPUTS_SUFFIX)
    with atomic_write(described, text=True) as file:
        json.dump(inputs, file, indent=1)
        file.write("\n")
    return inputs


def _require_onnx() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"exporting to ONNX needs {' and '.join(missing)}: pip install "
            "'skact[export]' (or use format='pt2', which needs torch only)"
        )
