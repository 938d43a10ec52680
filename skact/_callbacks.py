"""Callbacks of :class:`skact._training.Trainer`: progress, logging, time, stopping.

A callback sees the fit from outside the loop, as skorch's callbacks do: the trainer
calls each hook in the order the callbacks were given, and a callback changes nothing
in the trainer but what its documentation says (:class:`EarlyStopping` restores the
best epoch's weights at the end).
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from . import _guards

if TYPE_CHECKING:
    from ._training import Trainer, TrainingSnapshot


class Callback:
    """Base class: every hook does nothing.

    The trainer calls :meth:`on_fit_begin`, then per epoch :meth:`on_epoch_begin`,
    :meth:`on_step_end` after each optimiser step and :meth:`on_epoch_end`, and at last
    :meth:`on_fit_end`, also when the fit fails.
    """

    def on_fit_begin(self, trainer: Trainer, n_epochs: int, n_samples: int) -> None:
        """Called before the first epoch.

        Parameters
        ----------
        trainer : Trainer
        n_epochs : int
            Epochs this fit runs at most.
        n_samples : int
            Rows of one epoch on this process.
        """

    def on_epoch_begin(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        """Called before each epoch.

        Parameters
        ----------
        trainer : Trainer
        epoch : int
            Index of the epoch in this fit, from 0.
        n_steps : int
            Optimiser steps the epoch takes.
        """

    def on_step_end(self, trainer: Trainer, n_rows: int) -> None:
        """Called after each complete optimiser step.

        Parameters
        ----------
        trainer : Trainer
        n_rows : int
            Rows of the step's batch on this process.
        """

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        """Called after each complete epoch (and its validation loss).

        Parameters
        ----------
        trainer : Trainer
        epoch : int
            Index of the epoch in this fit, from 0.
        logs : dict
            ``"loss"``: the epoch's mean training loss; ``"validation_loss"`` when the
            trainer holds out data. Callbacks may add entries for those after them.

        Returns
        -------
        bool
            True to end the fit after this epoch.
        """
        return False

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        """Called once the fit ends, however it ends.

        Parameters
        ----------
        trainer : Trainer
        error : BaseException or None
            What ended the fit early (Ctrl-C, a failed step), None when it ran to its
            end or a callback stopped it.
        """


def _now() -> float:
    return time.perf_counter()


def format_duration(seconds: float) -> str:
    """A duration as people say it: ``"45 s"``, ``"3 min 20 s"``, ``"2 h 05 min"``.

    Parameters
    ----------
    seconds : float

    Returns
    -------
    str

    Examples
    --------
    >>> format_duration(4.2), format_duration(200), format_duration(7500)
    ('4 s', '3 min 20 s', '2 h 05 min')
    """
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressBar(Callback):
    """A tqdm bar over the epochs that also advances within an epoch.

    Each step moves the bar by its share of the epoch, so that a fit whose epochs take
    minutes shows its progress at once; the display is redrawn at most every
    ``mininterval`` seconds, so fast steps cost a counter update. The loss (and the
    validation loss) of the last epoch are shown after the bar.

    Parameters
    ----------
    desc : str, default="ACTEncoder"
        Label before the bar.
    mininterval : float, default=0.5
        Seconds between redraws.
    """

    def __init__(self, desc: str = "ACTEncoder", mininterval: float = 0.5) -> None:
        self.desc = desc
        self.mininterval = mininterval
        self.bar: Any = None
        self._step_share = 0.0

    def on_fit_begin(self, trainer: Trainer, n_epochs: int, n_samples: int) -> None:
        self.bar = tqdm(
            total=n_epochs,
            desc=self.desc,
            unit="epoch",
            leave=False,
            mininterval=self.mininterval,
            # n advances by fractions of an epoch: one significant decimal is enough.
            bar_format="{l_bar}{bar}| {n:.3g}/{total_fmt} epochs "
            "[{elapsed}<{remaining}{postfix}]",
        )

    def on_epoch_begin(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        self._step_share = 1.0 / max(1, n_steps)

    def on_step_end(self, trainer: Trainer, n_rows: int) -> None:
        self.bar.update(self._step_share)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        # The steps' shares add up to about 1: land on the epoch count exactly.
        self.bar.update(epoch + 1 - self.bar.n)
        self.bar.set_postfix(_shown(logs))
        return False

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EpochLog(Callback):
    """One line per epoch (``verbose=2``): ``epoch 3: loss 1.2345, val 1.3456``.

    Parameters
    ----------
    first_epoch : int, default=1
        The number the first epoch of this fit is shown with (epochs of earlier fits
        of the same model count).
    """

    def __init__(self, first_epoch: int = 1) -> None:
        self.first_epoch = first_epoch

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        shown = ", ".join(f"{k} {v}" for k, v in _shown(logs).items())
        tqdm.write(f"epoch {self.first_epoch + epoch}: {shown}")
        return False


def _shown(logs: dict[str, float]) -> dict[str, str]:
    names = {"loss": "loss", "validation_loss": "val"}
    return {names[k]: f"{v:.4f}" for k, v in logs.items() if k in names}


class TimeEstimate(Callback):
    """Say early how long the fit will take, and warn when that is too long.

    The first step is timed on its own (it pays one-off costs); after ``min_steps`` more
    steps, or as soon as a step ends ``min_seconds`` after the first, their time per
    step gives the rest of the fit's time. With ``verbose`` it is
    written (with samples per second); when it exceeds ``warn_over`` seconds and
    ``advice`` is given (the estimator gives it for a fit with ``max_iter="auto"`` on a
    CPU), a UserWarning names the parameters that would cut it, whatever ``verbose``.
    The estimate is made once per fit; it leaves out the validation passes.

    Parameters
    ----------
    verbose : bool, default=True
        Write the estimate.
    advice : str or None, default=None
        How to shorten the fit, in the user's terms; None: never warn.
    warn_over : float, default=600
        Seconds above which to warn.
    min_steps : int, default=5
    min_seconds : float, default=2.0
    clock : callable or None, default=None
        Seconds, monotonic; None: :func:`time.perf_counter`.

    Attributes
    ----------
    estimate_ : float or None
        The estimated seconds of the whole fit, once made.
    samples_per_second_ : float or None
    """

    def __init__(
        self,
        verbose: bool = True,
        advice: str | None = None,
        warn_over: float = 600.0,
        min_steps: int = 5,
        min_seconds: float = 2.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.verbose = verbose
        self.advice = advice
        self.warn_over = warn_over
        self.min_steps = min_steps
        self.min_seconds = min_seconds
        self.clock = _now if clock is None else clock
        self.estimate_: float | None = None
        self.samples_per_second_: float | None = None

    def on_fit_begin(self, trainer: Trainer, n_epochs: int, n_samples: int) -> None:
        self._n_epochs, self._n_samples = n_epochs, n_samples
        self._start = self.clock()
        self._steps = self._rows = 0
        self._total_steps = n_epochs * trainer.batch_count(n_samples)
        self.estimate_ = self.samples_per_second_ = None

    def on_step_end(self, trainer: Trainer, n_rows: int) -> None:
        if self.estimate_ is not None:
            return
        self._steps += 1
        elapsed = self.clock() - self._start
        if self._steps >= self._total_steps:  # the fit is over: nothing to announce
            self.estimate_ = elapsed
            return
        if self._steps == 1:
            # The first step pays one-off costs (the CPU's convolution kernels are
            # prepared on first use: 2-4x a later step's time on 32 px images), so it is
            # counted once and the rate comes from the steps after it.
            self._first = elapsed
            return
        self._rows += n_rows
        since_first = elapsed - self._first
        if self._steps - 1 < self.min_steps and since_first < self.min_seconds:
            return
        per_step = since_first / (self._steps - 1)
        self.estimate_ = self._first + per_step * (self._total_steps - 1)
        self.samples_per_second_ = self._rows / max(since_first, 1e-9)
        epochs = f"{self._n_epochs} epoch{'' if self._n_epochs == 1 else 's'}"
        if self.verbose:
            step = format_duration(per_step) if per_step >= 60 else f"{per_step:.3g} s"
            tqdm.write(
                f"ACTEncoder: about {format_duration(self.estimate_)} for {epochs} "
                f"({self.samples_per_second_:,.0f} samples/s, {step} per step)",
                file=sys.stderr,  # beside the bar, off a command's output
            )
        if self.advice is not None and self.estimate_ > self.warn_over:
            warnings.warn(
                f"ACTEncoder: this fit is estimated to take about "
                f"{format_duration(self.estimate_)} on the CPU ({epochs} of "
                f"{self._n_samples} samples at {self.samples_per_second_:,.0f} "
                f"samples/s). {self.advice}",
                UserWarning,
                stacklevel=_guards.caller_stacklevel(),
            )


class EarlyStopping(Callback):
    """Stop when the validation loss stops improving; keep the best epoch's weights.

    An epoch improves when its validation loss is below the best so far by more than
    ``tol``. After ``patience`` epochs in a row without improvement the fit ends; at
    the end of the fit (also when it ran out of epochs first) the weights, optimiser
    state and adversary of the best epoch are put back, unless the last epoch was the
    best. A fit that fails keeps what it has.

    Parameters
    ----------
    patience : int
        Epochs without improvement before stopping (``n_iter_no_change``).
    tol : float
        Smallest improvement that counts.

    Attributes
    ----------
    best_loss_ : float
        The best validation loss so far.
    epochs_since_best_ : int
        Epochs since the best one.
    """

    def __init__(self, patience: int, tol: float) -> None:
        self.patience = patience
        self.tol = tol
        self.best_loss_ = math.inf
        self.epochs_since_best_ = 0
        self._best: TrainingSnapshot | None = None

    def on_fit_begin(self, trainer: Trainer, n_epochs: int, n_samples: int) -> None:
        self.best_loss_, self.epochs_since_best_, self._best = math.inf, 0, None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        loss = logs["validation_loss"]
        if loss < self.best_loss_ - self.tol:
            self.best_loss_, self.epochs_since_best_ = loss, 0
            self._best = trainer.snapshot()
        else:
            self.epochs_since_best_ += 1
        return self.epochs_since_best_ >= self.patience

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        if error is None and self._best is not None and self.epochs_since_best_ > 0:
            trainer.restore(self._best)
        self._best = None
