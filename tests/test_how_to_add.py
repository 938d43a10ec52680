"""The architecture page's "How to add X", each shown working from this module alone.

Every example adds its thing here, in the test, touching no skact module, and shows it
working end to end (docs/architecture.rst links each one):

- a view of one's own: a step after ``ImageAugment``, given as ``augment=``, and a
  ``TabularAugment`` subclass for a table;
- an objective: an :class:`~skact.objectives.Objective` subclass given as
  ``objective=``;
- a callback: a :class:`skact.callbacks.Callback` subclass given in ``callbacks=``.

The two other additions have their examples beside the code they extend:

- a fitted attribute: one ``Field`` in ``skact/_state.py``:
  ``tests/test_state.py::test_a_declared_field_round_trips_with_no_other_edit``;
- a kind of input: one adapter class and one ``register_adapter`` call:
  ``tests/test_adapters.py::test_a_kind_registered_from_outside_fits_saves_and_loads``.
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from skact.augment import Compose, ImageAugment, TabularAugment
from skact.callbacks import Callback
from skact.objectives import Objective

from _small import small_encoder

X = np.random.default_rng(0).normal(size=(40, 4))
IMAGES = np.random.default_rng(1).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
#: A small image network, as tests/test_state.py fits images.
IMAGE_NETWORK = dict(n_components=4, projection_dim=4, hidden_layer_sizes=(8,), max_iter=1)


# ------------------------------------------------------------------------------ a view


class InvertSome:
    """A view step of one's own: inverts the colours of about half the images.

    It follows the protocol of the user guide's "Your own views" (images in [0, 1] of
    shape (n, C, H, W) and the fit's generator in, views of the same shape out) and
    counts its calls.
    """

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        self.calls += 1
        chosen = torch.rand(len(images), generator=generator, device=generator.device) < 0.5
        return torch.where(chosen.view(-1, 1, 1, 1), 1 - images, images)


def test_a_view_step_of_ones_own_trains_and_changes_the_features():
    step = InvertSome()
    views = Compose([ImageAugment(), step])
    with_step = small_encoder(augment=views, **IMAGE_NETWORK).fit(IMAGES)
    without = small_encoder(augment=ImageAugment(), **IMAGE_NETWORK).fit(IMAGES)
    # fit checks the callable twice, then each step draws two views of a batch.
    assert step.calls > 2
    features = with_step.transform(IMAGES)
    assert features.shape == (20, 4) and np.isfinite(features).all()
    assert not np.allclose(features, without.transform(IMAGES))
    # Code is pickled with the estimator, never written into a model file.
    restored = pickle.loads(pickle.dumps(with_step))
    np.testing.assert_array_equal(restored.transform(IMAGES), features)


class Negate(TabularAugment):
    """A table view of one's own: the corrupted rows, negated."""

    calls: ClassVar[int] = 0

    def __call__(self, x: Tensor, pool: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        Negate.calls += 1
        return -super().__call__(x, pool, *args, **kwargs)


def test_a_table_view_of_ones_own_makes_the_views():
    Negate.calls = 0
    small_encoder(augment=Negate(corruption_rate=0.3)).fit(X)
    assert Negate.calls > 0


# ------------------------------------------------------------------------ an objective


class Alignment(Objective):
    """A toy objective: the mean squared distance between two views' unit embeddings
    (alignment alone, which a real objective would pair with a term against collapse).
    Every loss it returns is kept in ``losses``, for the test to compare."""

    name: ClassVar[str] = "alignment"
    losses: ClassVar[list[float]] = []

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def pair_loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        z1, z2 = torch.nn.functional.normalize(z1), torch.nn.functional.normalize(z2)
        loss = self.scale * (z1 - z2).pow(2).sum(1).mean()
        Alignment.losses.append(float(loss.detach()))
        return loss


def test_an_objective_of_ones_own_trains_and_its_loss_is_the_loss_curve():
    Alignment.losses.clear()
    objective = Alignment(scale=3.0)
    enc = small_encoder(objective=objective, max_iter=2).fit(X)
    # 40 rows in batches of 16: 3 steps an epoch, one pair of views each.
    assert len(Alignment.losses) == 6
    per_epoch = np.reshape(Alignment.losses, (2, 3)).mean(axis=1)
    np.testing.assert_allclose(enc.loss_curve_, per_epoch, rtol=1e-6)
    # Its own parameters: a nested parameter, grid-searched as objective__scale.
    assert enc.get_params()["objective__scale"] == 3.0
    assert enc.objective is objective  # training used a copy
    assert enc.transform(X).shape == (40, 3)
    other = small_encoder(max_iter=2).fit(X)
    assert not np.allclose(enc.loss_curve_, other.loss_curve_)


# ------------------------------------------------------------------------- a callback


class EpochRecorder(Callback):
    """A toy callback: the number and loss of every epoch, and the fit's length."""

    def on_fit_begin(self, estimator: Any, n_epochs: int, n_samples: int) -> None:
        self.n_epochs_ = n_epochs
        self.epochs_: list[int] = []
        self.losses_: list[float] = []

    def on_epoch_end(self, estimator: Any, record: dict[str, Any]) -> None:
        self.epochs_.append(record["epoch"])
        self.losses_.append(record["loss"])


def test_a_callback_of_ones_own_sees_every_epoch():
    given = EpochRecorder()
    enc = small_encoder(callbacks=[given], max_iter=3, warm_start=True).fit(X)
    (ran,) = enc.callbacks_
    assert ran is not given and not hasattr(given, "epochs_")  # a clone ran
    assert ran.n_epochs_ == 3 and ran.epochs_ == [1, 2, 3]
    assert ran.losses_ == enc.loss_curve_
    # A warm-started fit continues the count, with a fresh clone.
    enc.fit(X)
    assert enc.callbacks_[0].epochs_ == [4, 5, 6]
    assert enc.callbacks_[0].losses_ == enc.loss_curve_[3:]
