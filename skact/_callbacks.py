"""Callbacks of :class:`skact._training.Trainer`: progress, logging, time, stopping,
and the monitor of the representation's quality.

A callback sees the fit from outside the loop, as skorch's callbacks do: the trainer
calls each hook in the order the callbacks were given, and a callback changes nothing
in the trainer but what its documentation says (:class:`EarlyStopping` and
:class:`Monitor` may restore the best epoch's weights at the end).
"""

from __future__ import annotations

import logging
import math
import statistics
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import _guards

if TYPE_CHECKING:
    from ._training import Trainer, TrainingSnapshot

logger = logging.getLogger(__name__)


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


#: Steps whose median time per row is the rate of :class:`TimeEstimate` (and epochs
#: whose median time outside the steps it adds per epoch left). Odd, for a clean
#: median: up to 5 stalled steps in 11 leave it alone.
RECENT_STEPS = 11


class TimeEstimate(Callback):
    """Say early how long the fit will take, keep saying it, and warn once if too long.

    The time per row is the median, over the last :data:`RECENT_STEPS` steps, of a
    step's seconds over its rows: a few steps stalled by another process do not move
    it, and a lasting slowdown or speed-up shows within ``RECENT_STEPS // 2 + 1``
    steps. The first step is left out (it pays one-off costs). The time left is the
    rows left times that, plus, for each epoch left, the median time the recent epochs
    spent outside their steps (the validation loss, the monitor, the other callbacks).
    The estimate is made after ``min_steps`` steps after the first, or as soon as a
    step ends ``min_seconds`` after the first, then updated after every step (a
    :class:`ProgressBar` or :class:`EpochLog` given this callback shows it). The first
    estimate (with samples per second) is logged at INFO, and with ``verbose`` also
    written above the bar. When
    ``advice`` is given (the estimator gives it for a fit with ``max_iter="auto"`` on a
    CPU), a UserWarning names the parameters that would cut the fit, whatever
    ``verbose``, once per fit: the first time the estimate exceeds ``warn_over``
    seconds while at least half of the fit is still ahead.

    Parameters
    ----------
    verbose : bool, default=True
        Write the first estimate above the bar (it is logged either way).
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
        The estimated seconds of the whole fit (the time so far and the time left),
        once made; updated after each step.
    remaining_ : float or None
        The estimated seconds left, once made; updated after each step.
    samples_per_second_ : float or None
        Rows per second of training steps, from the same median.
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
        self.remaining_: float | None = None
        self.samples_per_second_: float | None = None

    def on_fit_begin(self, trainer: Trainer, n_epochs: int, n_samples: int) -> None:
        self._n_epochs, self._n_samples = n_epochs, n_samples
        self._start = self._last = self.clock()
        self._steps = self._rows = self._epochs_done = 0
        self._first_end = math.inf  # when the first step ended
        self._per_row: deque[float] = deque(maxlen=RECENT_STEPS)
        self._between_epochs: deque[float] = deque(maxlen=RECENT_STEPS)
        self._warned = False
        self.estimate_ = self.remaining_ = self.samples_per_second_ = None

    def on_epoch_begin(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        now = self.clock()
        if self._steps:  # the last epoch's validation, monitor and callbacks
            self._between_epochs.append(now - self._last)
        self._last = now

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        self._epochs_done += 1
        return False

    def on_step_end(self, trainer: Trainer, n_rows: int) -> None:
        now = self.clock()
        seconds, self._last = now - self._last, now
        self._steps += 1
        self._rows += n_rows
        if self._steps == 1:
            # The first step pays one-off costs (the CPU's convolution kernels are
            # prepared on first use: 2-4x a later step's time on 32 px images): it
            # counts in the time so far, not in the rate.
            self._first_end = now
            return
        self._per_row.append(seconds / max(n_rows, 1))
        if (
            self.remaining_ is None
            and self._steps - 1 < self.min_steps
            and now - self._first_end < self.min_seconds
        ):
            return
        per_row = statistics.median(self._per_row)
        rows_left = max(0, self._n_epochs * self._n_samples - self._rows)
        # The current epoch's time after its steps is still ahead: it counts.
        epochs_left = self._n_epochs - self._epochs_done
        between = statistics.median(self._between_epochs) if self._between_epochs else 0
        first = self.remaining_ is None
        self.remaining_ = rows_left * per_row + epochs_left * between
        self.estimate_ = now - self._start + self.remaining_
        self.samples_per_second_ = 1.0 / max(per_row, 1e-12)
        if rows_left == 0 and first:  # the fit is over: nothing to announce
            return
        epochs = f"{self._n_epochs} epoch{'' if self._n_epochs == 1 else 's'}"
        if first:
            per_step = per_row * n_rows
            step = format_duration(per_step) if per_step >= 60 else f"{per_step:.3g} s"
            said = (
                f"ACTEncoder: about {format_duration(self.estimate_)} for {epochs} "
                f"({self.samples_per_second_:,.0f} samples/s, {step} per step)"
            )
            logger.info("%s", said)
            if self.verbose:  # the bar's companion line
                tqdm.write(said, file=sys.stderr)  # beside the bar, off stdout
        if (
            self.advice is not None
            and not self._warned
            and self.estimate_ > self.warn_over
            and self.remaining_ >= self.estimate_ / 2
        ):
            self._warned = True
            warnings.warn(
                f"ACTEncoder: this fit is estimated to take about "
                f"{format_duration(self.estimate_)} on the CPU ({epochs} of "
                f"{self._n_samples} samples at {self.samples_per_second_:,.0f} "
                f"samples/s). {self.advice}",
                UserWarning,
                stacklevel=_guards.caller_stacklevel(),
            )


def _time_left(estimate: TimeEstimate | None) -> list[str]:
    """``["about 3 min 20 s left"]`` from ``estimate``, or nothing before it is made."""
    if estimate is None or estimate.remaining_ is None:
        return []
    return [f"about {format_duration(estimate.remaining_)} left"]


class ProgressBar(Callback):
    """A tqdm bar over the epochs that also advances within an epoch.

    Each step moves the bar to its place in the epoch, so that a fit whose epochs take
    minutes shows its progress at once; the display is redrawn at most every
    ``mininterval`` seconds, so fast steps cost a counter update. After the bar come the
    time left of ``estimate`` (updated after each step) and the last epoch's logs (loss,
    validation loss, monitor). The bar ends on the number of epochs run; a fit stopped
    early (by early stopping) says so.

    Parameters
    ----------
    desc : str, default="ACTEncoder"
        Label before the bar.
    mininterval : float, default=0.5
        Seconds between redraws.
    estimate : TimeEstimate or None, default=None
        Where the time left comes from (tqdm's own guess, from its average rate, is not
        shown); None: no time left.
    """

    def __init__(
        self,
        desc: str = "ACTEncoder",
        mininterval: float = 0.5,
        estimate: TimeEstimate | None = None,
    ) -> None:
        self.desc = desc
        self.mininterval = mininterval
        self.estimate = estimate
        self.bar: Any = None
        self._epoch = self._n_steps = self._done = 0
        self._logs: dict[str, str] = {}

    def on_fit_begin(self, trainer: Trainer, n_epochs: int, n_samples: int) -> None:
        self._logs = {}
        self.bar = tqdm(
            total=n_epochs,
            desc=self.desc,
            unit="epoch",
            leave=False,
            mininterval=self.mininterval,
            # n advances by fractions of an epoch: one significant decimal is enough.
            bar_format="{l_bar}{bar}| {n:.3g}/{total_fmt} epochs [{elapsed}{postfix}]",
        )

    def on_epoch_begin(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        self._epoch, self._n_steps, self._done = epoch, max(1, n_steps), 0

    def on_step_end(self, trainer: Trainer, n_rows: int) -> None:
        # The position is computed, not summed: n / n is exactly 1, while a sum of
        # thirds passes 3.0 (tqdm then clamps the bar and shows a negative time).
        # An epoch retried with smaller batches (after running out of memory) takes
        # more steps than announced: the bar waits at the epoch's end.
        self._done += 1
        self.bar.n = self._epoch + min(self._done, self._n_steps) / self._n_steps
        self._show(_time_left(self.estimate))
        self.bar.update(0)  # redraws when mininterval has passed

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        self._logs = _shown(logs)
        self.bar.n = epoch + 1
        self._show(_time_left(self.estimate))
        self.bar.update(0)
        return False

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        if self.bar is None:
            return
        if error is None:
            # The last line shows where the fit ended, without a time left.
            self._show(["stopped early"] if self.bar.n < self.bar.total else [])
            self.bar.refresh()
        self.bar.close()
        self.bar = None

    def _show(self, first: list[str]) -> None:
        """Set the text after the bar (drawn at the next redraw)."""
        shown = first + [f"{k}={v}" for k, v in self._logs.items()]
        self.bar.set_postfix_str(", ".join(shown), refresh=False)


class EpochLog(Callback):
    """One line per epoch above the bar (``verbose=2``), on stderr:
    ``epoch 3: loss 1.2345, about 20 s left``.

    Parameters
    ----------
    first_epoch : int, default=1
        The number the first epoch of this fit is shown with (epochs of earlier fits
        of the same model count).
    estimate : TimeEstimate or None, default=None
        Where the time left, shown last, comes from; None: not shown.
    """

    def __init__(self, first_epoch: int = 1, estimate: TimeEstimate | None = None) -> None:
        self.first_epoch = first_epoch
        self.estimate = estimate

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        shown = [f"{k} {v}" for k, v in _shown(logs).items()]
        shown += _time_left(self.estimate)
        # Above the bar, on its stream: the progress display, off a command's stdout
        # (the same record goes to the ``skact`` logger, whatever ``verbose``).
        tqdm.write(f"epoch {self.first_epoch + epoch}: {', '.join(shown)}", file=sys.stderr)
        return False


#: How the progress bar and the epoch log name each entry of an epoch's logs.
_SHOWN_NAMES = {
    "loss": "loss",
    "validation_loss": "val",
    "few_shot_1nn_accuracy": "few-shot 1nn",
    "loo_1nn_accuracy": "1nn",
    "effective_rank": "rank",
}


def _shown(logs: dict[str, float]) -> dict[str, str]:
    return {
        _SHOWN_NAMES[k]: f"{v:.4g}" if k == "effective_rank" else f"{v:.4f}"
        for k, v in logs.items()
        if k in _SHOWN_NAMES
    }


class EarlyStopping(Callback):
    """Stop when a logged value stops improving; keep the best epoch's weights.

    An epoch improves when its value of ``key`` in the epoch's logs is better than the
    best so far by more than ``tol`` (lower, or higher with ``maximize``). After
    ``patience`` epochs in a row without improvement the fit ends; at the end of the
    fit (also when it ran out of epochs first) the weights, optimiser state and
    adversary of the best epoch are put back, unless the last epoch was the best. A
    fit that fails keeps what it has. A NaN value never improves.

    Parameters
    ----------
    patience : int
        Epochs without improvement before stopping (``n_iter_no_change``).
    tol : float
        Smallest improvement that counts.
    restore_best : bool, default=True
        Put the best epoch's state back at the end; False leaves that choice to
        another callback (:class:`Monitor` with ``keep_best=True``).
    key : str, default="validation_loss"
        The entry of the epoch's logs followed (those of the callbacks before this
        one included: :class:`Monitor` adds its estimate).
    maximize : bool, default=False
        Higher is better (the monitor's estimate); False: lower (a loss).

    Attributes
    ----------
    best_loss_ : float
        The best value so far (named for the validation loss it was made for).
    epochs_since_best_ : int
        Epochs since the best one.
    """

    def __init__(
        self,
        patience: int,
        tol: float,
        restore_best: bool = True,
        key: str = "validation_loss",
        maximize: bool = False,
    ) -> None:
        self.patience = patience
        self.tol = tol
        self.restore_best = restore_best
        self.key = key
        self.maximize = maximize
        self.best_loss_ = -math.inf if maximize else math.inf
        self.epochs_since_best_ = 0
        self._best: TrainingSnapshot | None = None

    def on_fit_begin(self, trainer: Trainer, n_epochs: int, n_samples: int) -> None:
        self.best_loss_ = -math.inf if self.maximize else math.inf
        self.epochs_since_best_, self._best = 0, None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        value = logs[self.key]
        better = (
            value > self.best_loss_ + self.tol
            if self.maximize
            else value < self.best_loss_ - self.tol
        )
        if better:
            self.best_loss_, self.epochs_since_best_ = value, 0
            self._best = trainer.snapshot() if self.restore_best else None
        else:
            self.epochs_since_best_ += 1
        return self.epochs_since_best_ >= self.patience

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        if error is None and self._best is not None and self.epochs_since_best_ > 0:
            trainer.restore(self._best)
        self._best = None


# ------------------------------------------------------------- records and logging


def epoch_record(
    trainer: Trainer,
    logs: dict[str, float],
    monitor_name: str | None,
    seconds: float,
    n_samples: int,
) -> dict[str, Any]:
    """The public record of an epoch (see :class:`skact.callbacks.Callback`).

    Parameters
    ----------
    trainer : Trainer
        After the epoch.
    logs : dict
        The epoch's logs, the callbacks' entries included.
    monitor_name : str or None
        The key of the monitor's estimate in ``logs``.
    seconds : float
        Wall-clock seconds of the epoch.
    n_samples : int
        Rows of the epoch on this process.

    Returns
    -------
    dict
        Keys :data:`RECORD_FIELDS`, in that order.
    """
    monitor = logs.get(monitor_name) if monitor_name is not None else None
    validation = logs.get("validation_loss")
    return {
        "epoch": trainer.epoch,
        "step": trainer.step,
        "loss": float(logs["loss"]),
        "validation_loss": None if validation is None else float(validation),
        "monitor": None if monitor is None else float(monitor),
        "monitor_name": monitor_name,
        # The rate of the epoch's last step (the schedule changes it every step).
        "learning_rate": float(trainer.optimizer.param_groups[0]["lr"]),
        "seconds": seconds,
        "samples_per_second": n_samples / seconds if seconds > 0 else math.inf,
    }


#: The keys of an epoch record, in the order loggers write them.
RECORD_FIELDS = (
    "epoch",
    "step",
    "loss",
    "validation_loss",
    "monitor",
    "monitor_name",
    "learning_rate",
    "seconds",
    "samples_per_second",
)


class EpochRecords(Callback):
    """Builds each epoch's public record once (:func:`epoch_record`), for the log and
    the user's callbacks after it, which all read the same one.

    Parameters
    ----------
    monitor_name : str or None
        The key of the monitor's estimate in the epoch's logs.

    Attributes
    ----------
    record_ : dict or None
        The last epoch's record (None before the first epoch ends).
    """

    def __init__(self, monitor_name: str | None) -> None:
        self.monitor_name = monitor_name
        self.record_: dict[str, Any] | None = None
        self._start = 0.0
        self._n_samples = 0

    def on_fit_begin(self, trainer: Trainer, n_epochs: int, n_samples: int) -> None:
        self._n_samples = n_samples
        self.record_ = None

    def on_epoch_begin(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        self._start = _now()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        seconds = _now() - self._start
        self.record_ = epoch_record(
            trainer, logs, self.monitor_name, seconds, self._n_samples
        )
        return False


class LogEpochs(Callback):
    """Each epoch's record to the ``skact`` logger at INFO, whatever ``verbose``.

    The record itself travels with the log record as its ``skact_record`` attribute
    (``extra``), for handlers that write structured logs.

    Parameters
    ----------
    records : EpochRecords
        Where the epoch's record is built (a callback before this one).
    """

    def __init__(self, records: EpochRecords) -> None:
        self.records = records

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        record = self.records.record_
        if record is None or not logger.isEnabledFor(logging.INFO):
            return False
        shown = ", ".join(f"{k} {v}" for k, v in _shown(logs).items())
        logger.info(
            "epoch %d: %s, learning rate %.3g, %.3g s, %.0f samples/s",
            record["epoch"],
            shown,
            record["learning_rate"],
            record["seconds"],
            record["samples_per_second"],
            extra={"skact_record": record},
        )
        return False


class UserCallback(Callback):
    """A public :class:`skact.callbacks.Callback` driven by the trainer.

    Translates the trainer's hooks into the public protocol: the estimator instead
    of the trainer, epochs numbered over the model's life from 1, an epoch record
    instead of the logs, and a True returned by ``on_step_end`` or ``on_epoch_end``
    into a stop (:meth:`Trainer.request_stop` after a step, the end of the fit after
    an epoch).

    Parameters
    ----------
    callback : skact.callbacks.Callback
    estimator : ACTEncoder
        The estimator being fitted.
    records : EpochRecords
        Where the epoch's record is built (a callback before this one).
    """

    def __init__(self, callback: Any, estimator: Any, records: EpochRecords) -> None:
        self.callback = callback
        self.estimator = estimator
        self.records = records

    def on_fit_begin(self, trainer: Trainer, n_epochs: int, n_samples: int) -> None:
        self.callback.on_fit_begin(self.estimator, n_epochs, n_samples)

    def on_epoch_begin(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        self.callback.on_epoch_begin(self.estimator, trainer.epoch + 1)

    def on_step_end(self, trainer: Trainer, n_rows: int) -> None:
        if self.callback.on_step_end(self.estimator, trainer.step):
            trainer.request_stop()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        assert self.records.record_ is not None  # EpochRecords runs before
        return bool(self.callback.on_epoch_end(self.estimator, self.records.record_))

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        self.callback.on_fit_end(self.estimator, error)


# ------------------------------------------------------------------------ monitor

#: Most rows the monitor follows: labeled rows for the 1-NN accuracy, any rows for the
#: effective rank. The 1-NN estimate then costs a 2,000 x 2,000 distance matrix and
#: both a forward pass over at most 2,000 rows, whatever the data set's size.
MONITOR_ROWS = 2000

#: An effective rank below this is a collapsed representation (1: every row on one
#: line through the origin, as for constant features).
COLLAPSED_RANK = 1.5


def loo_nn_accuracy(features: Tensor, labels: Tensor) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy, on ``features``' device.

    Each row is classified by the label of its nearest other row (Euclidean distance,
    as :func:`skact.evaluation.knn_probe`; the lower index wins a tie).

    Parameters
    ----------
    features : Tensor of shape (n_rows, n_features)
    labels : Tensor of shape (n_rows,)
        Integer class codes.

    Returns
    -------
    float
        The share of rows whose nearest other row has their label.

    Examples
    --------
    >>> features = torch.tensor([[0.0], [1.0], [5.0], [7.0]])
    >>> loo_nn_accuracy(features, torch.tensor([0, 0, 1, 0]))
    0.5
    """
    distances = torch.cdist(features.float(), features.float())
    distances.fill_diagonal_(math.inf)
    nearest = distances.argmin(dim=1)
    return float((labels.index_select(0, nearest) == labels).float().mean())


def effective_rank(features: Tensor) -> float:
    """RankMe's effective rank: exp of the entropy of the normalised singular values.

    With singular values ``s`` of ``features`` (not centred, as in RankMe),
    ``p = s / sum(s)`` and the rank is ``exp(-sum(p * log p))``: ``d`` for ``d``
    orthogonal directions of equal weight, 1 for rows on one line. A matrix of zeros
    counts as rank 1; a non-finite one (or one whose SVD fails) gives NaN.

    Parameters
    ----------
    features : Tensor of shape (n_rows, n_features)

    Returns
    -------
    float
        Between 1 and ``min(n_rows, n_features)``.

    References
    ----------
    .. [1] Garrido, Balestriero, Najman and LeCun, "RankMe: Assessing the Downstream
       Performance of Pretrained Self-Supervised Representations by Their Rank",
       ICML 2023.

    Examples
    --------
    >>> round(effective_rank(torch.eye(4)), 6), effective_rank(torch.ones(5, 3))
    (4.0, 1.0)
    """
    features = features.float()
    if not bool(torch.isfinite(features).all()):
        return math.nan
    try:
        singular = torch.linalg.svdvals(features).double().cpu()
    except torch.linalg.LinAlgError:  # the SVD did not converge: no estimate this time
        return math.nan
    if not bool((singular > 0).any()):
        return 1.0
    # float32 rounding leaves singular values of about this size where they are 0.
    noise = float(singular.max()) * max(features.shape) * torch.finfo(torch.float32).eps
    singular = singular.masked_select(singular > noise)
    p = singular / singular.sum()
    return float(torch.exp(-(p * p.log()).sum()))


def spread_rank(features: Tensor) -> float:
    """The effective rank of the rows around their mean: 1 for constant features.

    The collapse check: :func:`effective_rank` counts the mean as a direction, which
    dominates non-negative features (after a ReLU) that are not collapsed at all.
    Rows that differ by no more than float32 rounding of their size count as equal.

    Parameters
    ----------
    features : Tensor of shape (n_rows, n_features)

    Returns
    -------
    float

    Examples
    --------
    >>> spread_rank(torch.ones(5, 3) + torch.eye(5, 3) * 1e-9)
    1.0
    """
    features = features.float()
    centred = features - features.mean(dim=0)
    size = float(features.abs().max()) if features.numel() else 0.0
    if float(centred.abs().max()) <= 8 * size * torch.finfo(torch.float32).eps:
        return 1.0
    return effective_rank(centred)


def monitored_rows(
    n_samples: int, y: np.ndarray | None, labeled: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows the monitor follows, drawn once from ``seed``, and their class codes.

    With labels of at least 2 classes of at least 2 rows each (among at most
    :data:`MONITOR_ROWS` labeled rows, drawn when there are more), the labeled rows
    and their codes; otherwise at most :data:`MONITOR_ROWS` of all the rows, and None.

    Parameters
    ----------
    n_samples : int
    y : ndarray of shape (n_samples,) or None
        Labels; None: none.
    labeled : ndarray of bool of shape (n_samples,) or None
        Which rows of ``y`` are labeled (see :func:`skact._labels.labeled_mask`).
    seed : int

    Returns
    -------
    rows : ndarray of int
        Sorted row indices.
    codes : ndarray of int or None
        Class code of each row (its index among the sorted classes); None for the
        label-free estimate.
    """
    rng = np.random.default_rng(seed)
    if y is not None and labeled is not None:
        rows = np.flatnonzero(labeled)
        if rows.size > MONITOR_ROWS:
            rows = np.sort(rng.choice(rows, MONITOR_ROWS, replace=False))
        if rows.size:
            _, codes, counts = np.unique(y[rows], return_inverse=True, return_counts=True)
            if np.count_nonzero(counts >= 2) >= 2:
                return rows, codes.ravel()
    if n_samples > MONITOR_ROWS:
        return np.sort(rng.choice(n_samples, MONITOR_ROWS, replace=False)), None
    return np.arange(n_samples), None


#: Labeled rows per class that each row is compared with in the monitor's few-shot
#: estimate: the middle of the few-shot protocol's 1 / 5 / 10 labels per class.
MONITOR_SHOTS = 5

#: Seeded draws of those rows the few-shot estimate averages over.
MONITOR_DRAWS = 10


def shot_examples(
    codes: np.ndarray, seed: int, shots: int = MONITOR_SHOTS, draws: int = MONITOR_DRAWS
) -> np.ndarray:
    """The labeled examples ("shots") each row is compared with, in each draw.

    For every row and every class, ``shots`` rows of that class other than the row
    itself are drawn (all of them when the class has no more): a window of a random
    permutation of the class's rows at a random offset per row, which is a uniformly
    random subset for each row. When no class has more than ``shots + 1`` rows every
    draw would be the same, so there is one: every other row, the leave-one-out set.
    Indices, not an ``n x n`` mask: 2,000 rows of 10 classes take 50 per row.

    Parameters
    ----------
    codes : ndarray of int of shape (n_rows,)
        Class code of each row.
    seed : int
    shots : int, default=MONITOR_SHOTS
    draws : int, default=MONITOR_DRAWS

    Returns
    -------
    ndarray of int64 of shape (n_draws, n_rows, n_examples)
        ``[d, i]``: the examples of row ``i`` in draw ``d``, sorted, padded with
        ``n_rows`` (no row) where a small class leaves a row fewer;
        ``n_draws`` is ``draws``, or 1 as said above.

    Examples
    --------
    >>> shot_examples(np.array([0, 0, 0, 1, 1]), seed=0, shots=5)[0].tolist()
    [[1, 2, 3, 4], [0, 2, 3, 4], [0, 1, 3, 4], [0, 1, 2, 4], [0, 1, 2, 3]]
    """
    rng = np.random.default_rng(seed)
    n = len(codes)
    rows = np.arange(n)[:, None]
    members = [np.flatnonzero(codes == c) for c in np.unique(codes)]
    if all(len(m) <= shots + 1 for m in members):
        others = np.broadcast_to(np.arange(n), (n, n))[~np.eye(n, dtype=bool)]
        return others.reshape(1, n, n - 1).astype(np.int64)
    out = []
    for _ in range(draws):
        parts = []
        for member in members:
            if len(member) <= shots:  # all of them, and no row as its own example
                part = np.broadcast_to(member, (n, len(member))).copy()
                part[part == rows] = n
            else:
                order = rng.permutation(member)
                start = rng.integers(0, len(member), size=(n, 1))
                window = order[(start + np.arange(shots + 1)) % len(member)]
                # A row's own index to the end, then one more than needed is dropped.
                own = np.argsort(window == rows, axis=1, kind="stable")
                part = np.take_along_axis(window, own, axis=1)[:, :shots]
            parts.append(part)
        out.append(np.sort(np.concatenate(parts, axis=1), axis=1))
    return np.stack(out).astype(np.int64)


def few_shot_nn_accuracy(features: Tensor, labels: Tensor, examples: Tensor) -> float:
    """Accuracy of each labeled row's nearest among a few labeled examples per class.

    For each draw (see :func:`shot_examples`) every row is classified by the label of
    its nearest example (Euclidean distance, as :func:`skact.evaluation.knn_probe`; the
    lower index wins a tie); the result is the share classified right, averaged over
    the draws. With every other row as the examples this is :func:`loo_nn_accuracy`.
    With a few examples per class it is the few-shot protocol in small, and is not
    fooled as the leave-one-out accuracy of many labeled rows is by near-duplicates
    (overlapping crops, repeated rows): a row's twin is rarely among its examples.

    Parameters
    ----------
    features : Tensor of shape (n_rows, n_features)
    labels : Tensor of shape (n_rows,)
        Integer class codes.
    examples : Tensor of int64 of shape (n_draws, n_rows, n_examples)
        Each row's examples in each draw, sorted, ``n_rows`` for none, on
        ``features``' device.

    Returns
    -------
    float

    Examples
    --------
    >>> features = torch.tensor([[0.0], [1.0], [5.0], [7.0]])
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> examples = torch.tensor([[[1, 2], [0, 3], [1, 4], [1, 2]]])  # 4: no row
    >>> few_shot_nn_accuracy(features, labels, examples)  # row 2's only example: 1
    0.75
    """
    distances = torch.cdist(features.float(), features.float())
    n = len(labels)
    padded = torch.cat([distances, distances.new_full((n, 1), math.inf)], dim=1)
    scores = []
    for draw in examples:
        nearest = draw.gather(1, padded.gather(1, draw).argmin(dim=1, keepdim=True))
        scores.append((labels.index_select(0, nearest.squeeze(1)) == labels).float().mean())
    return float(torch.stack(scores).mean())


def monitor_estimate(features: Tensor, codes: Tensor | None, shots: Tensor | None) -> float:
    """The monitor's estimate: :func:`few_shot_nn_accuracy` with codes, else
    :func:`effective_rank`.

    Parameters
    ----------
    features : Tensor of shape (n_rows, n_features)
    codes : Tensor of shape (n_rows,) or None
    shots : Tensor of int64 of shape (n_draws, n_rows, n_examples) or None
        The draws of :func:`shot_examples` (with ``codes``).

    Returns
    -------
    float
    """
    if codes is None or shots is None:
        return effective_rank(features)
    return few_shot_nn_accuracy(features, codes, shots)


def monitor_name(labeled: bool) -> str:
    """The name of the monitor's quantity, as ``monitor_name_`` and the logs hold it.

    Parameters
    ----------
    labeled : bool

    Returns
    -------
    str
        ``"few_shot_1nn_accuracy"`` or ``"effective_rank"`` (models saved by a skact
        before the few-shot estimate hold ``"loo_1nn_accuracy"``).
    """
    return "few_shot_1nn_accuracy" if labeled else "effective_rank"


class Monitor(Callback):
    """After each epoch, a cheap seeded estimate of the representation's quality.

    ``embed()`` returns the current representation of the rows the monitor follows (the
    same rows every epoch); with ``codes`` the estimate is their few-shot 1-NN accuracy
    (:func:`few_shot_nn_accuracy`, the same draws of shots every epoch), else their
    effective rank (:func:`effective_rank`). It is added to the epoch's logs under
    :func:`monitor_name` (for callbacks after this one: the progress bar shows it). When
    the model the fit ends with has collapsed (its rows' effective rank around their
    mean, :func:`spread_rank`, is below :data:`COLLAPSED_RANK`), a UserWarning says so,
    once per fit. Under data-parallel training the estimate is averaged over the
    processes, so that they keep the same epoch.

    Parameters
    ----------
    embed : callable
        ``embed() -> Tensor of shape (n_rows, n_features)``, without gradients.
    codes : Tensor or None
        Class codes of the rows, on the device of ``embed``'s output; None: label-free.
    keep_best : bool, default=False
        Put back the weights, optimiser state and adversary of the epoch with the
        highest estimate at the end of the fit (the first of equals), unless the last
        epoch was it. A fit that fails keeps what it has.
    shots : Tensor of int64 of shape (n_draws, n_rows, n_examples) or None, default=None
        With ``codes``: the examples of each row in each draw (:func:`shot_examples`),
        on the same device; None draws them with seed 0.

    Attributes
    ----------
    best_ : float
        The highest estimate so far (NaN before the first epoch).
    """

    def __init__(
        self,
        embed: Callable[[], Tensor],
        codes: Tensor | None,
        keep_best: bool = False,
        shots: Tensor | None = None,
    ) -> None:
        self.embed = embed
        self.codes = codes
        if codes is not None and shots is None:
            shots = torch.from_numpy(shot_examples(codes.cpu().numpy(), seed=0))
            shots = shots.to(codes.device)
        self.shots = shots
        self.keep_best = keep_best
        self.name = monitor_name(codes is not None)
        self.best_ = math.nan
        self._epochs_since_best = 0
        self._best: TrainingSnapshot | None = None
        self._last = self._at_best = (0, math.nan, 0)

    def on_fit_begin(self, trainer: Trainer, n_epochs: int, n_samples: int) -> None:
        self.best_, self._epochs_since_best, self._best = math.nan, 0, None
        self._last = self._at_best = (0, math.nan, 0)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        with torch.no_grad():
            features = self.embed()
            estimate = monitor_estimate(features, self.codes, self.shots)
            value = trainer.strategy.mean(estimate)
            # (epoch, rank around the mean, width) of the kept model, for on_fit_end.
            self._last = (trainer.epoch, spread_rank(features), features.shape[1])
        logs[self.name] = value
        if value > self.best_ or (math.isnan(self.best_) and not math.isnan(value)):
            self.best_, self._epochs_since_best = value, 0
            self._best = trainer.snapshot() if self.keep_best else None
            self._at_best = self._last
        else:
            self._epochs_since_best += 1
        return False

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        if error is not None:
            self._best = None
            return
        kept = self._last
        if self._best is not None and self._epochs_since_best > 0:
            trainer.restore(self._best)
            kept = self._at_best
        self._best = None
        epoch, rank, width = kept
        # Checked on the model the fit hands back: an early collapse that training
        # undoes is no concern.
        if rank < COLLAPSED_RANK:
            warnings.warn(
                f"ACTEncoder: the representation collapsed (the model kept, after "
                f"epoch {epoch}: around their mean, the rows' representations have an "
                f"effective rank of {rank:.3g} out of {width}, nearly all on one point "
                "or one line). Try a lower learning_rate, stronger views "
                "(corruption_rate, augment) or, with objective='act', a larger alpha.",
                UserWarning,
                stacklevel=_guards.caller_stacklevel(),
            )
