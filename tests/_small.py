"""The small, fast, deterministic ACTEncoder the tests build (one definition for all)."""

from __future__ import annotations

from typing import Any

from skact import ACTEncoder

#: A tiny network trained briefly on the CPU; tests override what they need.
SMALL = dict(
    n_components=3,
    hidden_layer_sizes=(8,),
    projection_dim=4,
    max_iter=2,
    batch_size=16,
    device="cpu",
    random_state=0,
)


def small_encoder(cls: type[ACTEncoder] = ACTEncoder, **params: Any) -> ACTEncoder:
    """``cls`` with :data:`SMALL` updated by ``params``."""
    return cls(**{**SMALL, **params})
