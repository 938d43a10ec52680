"""A stand-in for the Trainer, for tests of single callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from skact._training import SingleProcess

if TYPE_CHECKING:
    from skact._training import Trainer


class FakeTrainer:
    """What EarlyStopping and Monitor read of a Trainer: the epoch, the strategy, and
    snapshot / restore (recorded in ``restored``)."""

    def __init__(self) -> None:
        self.epoch = 0
        self.strategy = SingleProcess()
        self.restored: list[str] = []

    def snapshot(self) -> str:
        return f"after epoch {self.epoch}"

    def restore(self, snapshot: str) -> None:
        self.restored.append(snapshot)

    def as_trainer(self) -> Trainer:
        """This object, typed as the Trainer the callbacks take (they read only the
        attributes above)."""
        return cast("Trainer", self)
