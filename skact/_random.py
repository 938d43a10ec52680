"""Random streams of a fit: torch generators on the device and seeds derived from them.

Every random draw of a fit comes from a generator built here, seeded from the
estimator's ``random_state``, so that a seeded fit repeats bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """A torch.Generator on ``device`` (CPU for devices without their own).

    Parameters
    ----------
    device : torch.device
    seed : int

    Returns
    -------
    torch.Generator
    """
    gen_device = device if device.type in ("cuda", "cpu") else torch.device("cpu")
    return torch.Generator(device=gen_device).manual_seed(seed)


def derived_seed(generator: torch.Generator, stream: int = 1) -> int:
    """A seed for another random stream of the fit that seeded ``generator``.

    The seed comes from ``generator``'s initial seed (kept across ``get_state`` /
    ``set_state``, so a warm start derives the same one), not from its draws: deriving
    it changes nothing else in the fit.

    Parameters
    ----------
    generator : torch.Generator
    stream : int, default=1
        Which derived stream (1: the early-stopping views).

    Returns
    -------
    int
    """
    sequence = np.random.SeedSequence([generator.initial_seed(), stream])
    return int(sequence.generate_state(1)[0])


def generator_state_for(
    state: Tensor, saved: torch.device, target: torch.device, rng: np.random.Generator
) -> Tensor:
    """A generator ``state`` saved on ``saved``, usable on ``target``.

    CUDA and CPU generators have states of different kinds: across device types the
    generator is reseeded from ``rng`` (the model's own random state, so the result is
    deterministic); on the same type ``state`` is kept.

    Parameters
    ----------
    state : Tensor
    saved, target : torch.device
    rng : numpy.random.Generator

    Returns
    -------
    Tensor
    """
    if saved.type == target.type:
        return state
    return make_generator(target, int(rng.integers(2**31 - 1))).get_state()
