"""What a fit will use: the estimator's settings with every ``"auto"`` resolved, once.

:func:`plan_fit` turns the estimator's parameters, the input's adapter, the number of
samples and the device into a :class:`FitPlan`; :func:`skact.resolved_settings` reports
it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import _device
from ._auto import ComputeSettings, continued_schedule

if TYPE_CHECKING:
    from .adapters.base import InputAdapter


@dataclass(frozen=True)
class FitPlan:
    """The settings of one fit, resolved.

    Attributes
    ----------
    n_samples : int
        Rows of the fit (every rank's, under distributed training).
    kind : str
        The adapter's label (``"table"``, ``"mixed table"``, ``"images"``).
    input_shape : tuple of int
        Shape of one network input.
    network : str
        The network's name, the class of a given module, or ``"callable"``.
    max_iter : int
        Epochs (a quarter of a fresh fit's for a continued ``"auto"`` fit).
    batch_size : int
        Rows per batch, at most ``n_samples``.
    learning_rate : float
        Peak learning rate (0.1x a fresh fit's for a continued ``"auto"`` fit: see
        :func:`skact._auto.continued_schedule`).
    warmup_to_peak : bool
        Whether the learning rate warms up to its peak: False for a continued fit
        whose ``learning_rate`` is ``"auto"`` (it starts at its lower peak).
    continuing : bool
        Whether the fit continues a fitted encoder (``warm_start``).
    device : torch.device
    compute : skact._auto.ComputeSettings
        Precision and memory format of the forward passes on ``device``.
    """

    n_samples: int
    kind: str
    input_shape: tuple[int, ...]
    network: str
    max_iter: int
    batch_size: int
    learning_rate: float
    warmup_to_peak: bool
    continuing: bool
    device: torch.device
    compute: ComputeSettings


def plan_fit(
    params: dict[str, Any],
    adapter: InputAdapter,
    n_samples: int,
    device: torch.device,
    continuing: bool = False,
) -> FitPlan:
    """Resolve the estimator's ``params`` for ``n_samples`` of ``adapter``'s input.

    Parameters
    ----------
    params : dict
        ``ACTEncoder.get_params(deep=False)``.
    adapter : InputAdapter
    n_samples : int
    device : torch.device
    continuing : bool, default=False
        Whether the fit continues a fitted encoder (``warm_start``).

    Returns
    -------
    FitPlan
    """
    auto = adapter.auto_settings(device.type, n_samples)
    spec = params["encoder"]
    if isinstance(spec, str):
        network = adapter.network_name(spec, device.type)
    else:
        network = type(spec).__name__ if isinstance(spec, nn.Module) else "callable"
    batch_size = auto.batch_size if params["batch_size"] == "auto" else params["batch_size"]
    max_iter, learning_rate = params["max_iter"], params["learning_rate"]
    schedule = continued_schedule(continuing)
    return FitPlan(
        n_samples=n_samples,
        kind=adapter.label,
        input_shape=tuple(adapter.input_shape),
        network=network,
        max_iter=(
            schedule.epochs(auto.max_iter) if isinstance(max_iter, str) else int(max_iter)
        ),
        batch_size=min(int(batch_size), n_samples),
        learning_rate=(
            auto.learning_rate * schedule.learning_rate_factor
            if isinstance(learning_rate, str)
            else float(learning_rate)
        ),
        warmup_to_peak=schedule.warmup or not isinstance(learning_rate, str),
        continuing=continuing,
        device=device,
        compute=_device.compute_settings(device, adapter.kind, params["precision"]),
    )
