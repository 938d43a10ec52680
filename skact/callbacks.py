"""Your code, called by :class:`~skact.ACTEncoder` while it trains.

Pass a list of callbacks as ``ACTEncoder(callbacks=[...])``. A callback is a
*parameter*, so it follows scikit-learn's rules for parameters:

- it is an object with ``get_params`` / ``set_params`` over its constructor's
  arguments, which its ``__init__`` stores unchanged (subclass :class:`Callback`,
  which provides them); ``clone``, ``GridSearchCV`` and ``cross_validate`` copy it
  with the estimator;
- the callbacks you pass are never run themselves: each ``fit`` or ``partial_fit`` call
  runs fresh clones, kept afterwards in the estimator's ``callbacks_``, so no two fits
  share a live object (nor a state, an open file, a counter). Read what a callback
  gathered from ``estimator.callbacks_``, which is pickled with the estimator: let go
  of what cannot be pickled (an open file, a writer) in ``on_fit_end``.

Saving: :meth:`ACTEncoder.save` stores :class:`EarlyStopping` by name and parameters,
and :func:`skact.load` rebuilds it. A callback of your own class is code, which a model
file never holds, and a :class:`CSVLogger` names a path, which a file must never choose
for a later fit: a list with either is saved as ``callbacks=None`` (a warning names
them); set them again after loading with
``set_params(callbacks=[...])``. Pickling keeps every callback.

The protocol (every hook is optional; the estimator passed is the one being fitted, its
network ``encoder_`` in training; ``loss_curve_`` and the other curves are updated when
the fit ends):

=====================================================  ==================================
``on_fit_begin(estimator, n_epochs, n_samples)``       before the first epoch
``on_epoch_begin(estimator, epoch)``                   before each epoch
``on_step_end(estimator, step)``                       after each optimiser step; True
                                                       ends the fit after this step
``on_epoch_end(estimator, record)``                    after each epoch; True ends the
                                                       fit after this epoch
``on_fit_end(estimator, error)``                       once, however the fit ends
=====================================================  ==================================

The epoch record is a dict with the keys of :data:`RECORD_FIELDS`, in this order:

``epoch``
    The epoch's number over the model's life, from 1 (``n_iter_`` after it).
``step``
    Optimiser steps taken over the model's life.
``loss``
    The epoch's mean training loss.
``validation_loss``
    The held-out loss (``early_stopping=True``), else None.
``monitor``, ``monitor_name``
    The monitor's estimate of the representation's quality and its name (see
    ``ACTEncoder.monitor_curve_``).
``learning_rate``
    The rate of the epoch's last step.
``seconds``
    Wall-clock seconds of the epoch (its steps, validation loss and monitor).
``samples_per_second``
    The epoch's rows over those seconds.

Stopping: a True from ``on_step_end`` ends the fit after that step: the steps done
are kept and the model is usable, ``n_iter_`` counts the complete epochs only (the
epoch cut short is not one, as after Ctrl-C), and no error or warning is raised. A True
from ``on_epoch_end`` ends it after that epoch.

Under data-parallel training (:mod:`skact.distributed`) every process runs the
callbacks, with the same records (the loss and the monitor are averaged over the
processes); a stop must be decided alike on every process, or they wait for each other
for ever. Write files from rank 0 only, as :class:`CSVLogger` does.
"""

from __future__ import annotations

import csv
import datetime
import itertools
import json
import math
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch

from . import _callbacks
from ._params import ParamsMixin

if TYPE_CHECKING:
    from ._encoder import ACTEncoder

__all__ = ["RECORD_FIELDS", "CSVLogger", "Callback", "EarlyStopping"]

#: The keys of an epoch record, in the order :class:`CSVLogger` writes them.
RECORD_FIELDS: tuple[str, ...] = _callbacks.RECORD_FIELDS


class Callback(ParamsMixin):
    """Base class of callbacks: every hook does nothing.

    Subclass it and override the hooks you need. As for a scikit-learn estimator,
    ``__init__`` stores each argument unchanged under its own name (``get_params``
    reads them back for ``clone``), and state a fit builds goes into attributes
    ending with ``_``, set in :meth:`on_fit_begin`.

    Examples
    --------
    >>> import numpy as np
    >>> from skact import ACTEncoder
    >>> from skact.callbacks import Callback
    >>> class StopBelow(Callback):
    ...     def __init__(self, loss=1.0):
    ...         self.loss = loss
    ...
    ...     def on_epoch_end(self, estimator, record):
    ...         return record["loss"] < self.loss  # True ends the fit
    >>> X = np.random.default_rng(0).normal(size=(64, 5))
    >>> enc = ACTEncoder(4, hidden_layer_sizes=(8,), max_iter=3, random_state=0,
    ...                  callbacks=[StopBelow(loss=100.0)]).fit(X)
    >>> enc.n_iter_
    1
    """

    def on_fit_begin(self, estimator: ACTEncoder, n_epochs: int, n_samples: int) -> None:
        """Called before the first epoch of a ``fit`` or ``partial_fit`` call.

        Parameters
        ----------
        estimator : ACTEncoder
            The estimator being fitted.
        n_epochs : int
            Epochs this call runs at most.
        n_samples : int
            Rows of one epoch (held-out rows not counted).
        """

    def on_epoch_begin(self, estimator: ACTEncoder, epoch: int) -> None:
        """Called before each epoch.

        Parameters
        ----------
        estimator : ACTEncoder
        epoch : int
            The epoch's number over the model's life, from 1.
        """

    def on_step_end(self, estimator: ACTEncoder, step: int) -> bool | None:
        """Called after each optimiser step (keep it cheap: it runs at every step).

        Parameters
        ----------
        estimator : ACTEncoder
        step : int
            Optimiser steps taken over the model's life.

        Returns
        -------
        bool or None
            True ends the fit after this step (see the module's documentation).
        """
        return None

    def on_epoch_end(self, estimator: ACTEncoder, record: dict[str, Any]) -> bool | None:
        """Called after each complete epoch, its validation loss and monitor.

        Parameters
        ----------
        estimator : ACTEncoder
        record : dict
            The epoch record (:data:`RECORD_FIELDS`).

        Returns
        -------
        bool or None
            True ends the fit after this epoch.
        """
        return None

    def on_fit_end(self, estimator: ACTEncoder, error: BaseException | None) -> None:
        """Called once when the fit ends: run out of epochs, stopped, or failed.

        Parameters
        ----------
        estimator : ACTEncoder
        error : BaseException or None
            What ended the fit early (Ctrl-C, a failed step), which is raised after
            this hook; None when it ran to its end or a callback stopped it.
        """

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


#: File suffixes :class:`CSVLogger` reads as JSON lines (every other: CSV).
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")

# Numbers the ``{run}`` of this process's fits, after the time and the process id.
_runs = itertools.count(1)


def _run_name() -> str:
    """A name no other fit takes: UTC time, process id, the fit's number in it."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{now}-{os.getpid()}-{next(_runs)}"


def _distributed_rank() -> int:
    """This process's rank in the default process group, 0 without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return int(torch.distributed.get_rank())
    return 0


class CSVLogger(Callback):
    """Write each epoch's record to a file: CSV, or JSON lines.

    The file is written anew by each ``fit`` (or appended to, with ``append``), one
    line per epoch, flushed after each, and closed when the fit ends. Under a grid
    search every fit would write the same file: put ``{run}`` in ``path`` and each
    fit writes its own (``{run}`` becomes ``<UTC time>-<process id>-<n>``; the file's
    name is in ``path_`` of the fit's copy, ``estimator.callbacks_``). Under
    data-parallel training (:mod:`skact.distributed`) rank 0 writes it.

    Parameters
    ----------
    path : str or path-like
        The file; its folder must exist. ``{run}`` in it is replaced per fit.
    format : {"auto", "csv", "jsonl"}, default="auto"
        ``"auto"``: JSON lines for a path ending with ``.jsonl``, ``.ndjson`` or
        ``.json``, else CSV. CSV has a header line of :data:`RECORD_FIELDS` and an
        empty cell for None; JSON lines have one object per line, ``null`` for None
        and for a NaN.
    append : bool, default=False
        Add to an existing file instead of replacing it (a CSV header is written only
        to an empty file). For ``partial_fit`` calls, each of which is a fit of one
        epoch.

    Attributes
    ----------
    path_ : str
        The file this fit writes (``path`` with ``{run}`` replaced).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skact import ACTEncoder
    >>> from skact.callbacks import CSVLogger
    >>> log = os.path.join(tempfile.mkdtemp(), "fit.csv")
    >>> X = np.random.default_rng(0).normal(size=(64, 5))
    >>> enc = ACTEncoder(4, hidden_layer_sizes=(8,), max_iter=2, random_state=0,
    ...                  callbacks=[CSVLogger(log)]).fit(X)
    >>> open(log).read().splitlines()[0]
    'epoch,step,loss,validation_loss,monitor,monitor_name,learning_rate,seconds,samples_per_second'
    >>> len(open(log).read().splitlines())  # the header and 2 epochs
    3
    """

    def __init__(
        self, path: str | os.PathLike[str], format: str = "auto", append: bool = False
    ) -> None:
        self.path = path
        self.format = format
        self.append = append

    def on_fit_begin(self, estimator: ACTEncoder, n_epochs: int, n_samples: int) -> None:
        if self.format not in ("auto", "csv", "jsonl"):
            raise ValueError(
                f"CSVLogger(format={self.format!r}): use 'auto', 'csv' or 'jsonl'."
            )
        self.path_ = os.fsdecode(self.path).replace("{run}", _run_name())
        json_lines = self.format == "jsonl" or (
            self.format == "auto" and Path(self.path_).suffix.lower() in JSON_LINES_SUFFIXES
        )
        self.format_ = "jsonl" if json_lines else "csv"
        self._file: IO[str] | None = None
        self._writer: Any = None
        if _distributed_rank() > 0:
            return  # every process has the same records: the first one writes them
        self._file = open(  # closed in on_fit_end
            self.path_, "a" if self.append else "w", newline="", encoding="utf-8"
        )
        if not json_lines:
            self._writer = csv.DictWriter(self._file, fieldnames=RECORD_FIELDS)
            if self._file.tell() == 0:
                self._writer.writeheader()

    def on_epoch_end(self, estimator: ACTEncoder, record: dict[str, Any]) -> bool | None:
        if self._file is None:
            return None
        if self._writer is not None:
            self._writer.writerow(record)
        else:
            plain = {
                k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in record.items()
            }
            self._file.write(json.dumps(plain) + "\n")
        self._file.flush()  # a tail -f, or a fit killed later, sees every epoch
        return None

    def on_fit_end(self, estimator: ACTEncoder, error: BaseException | None) -> None:
        file = getattr(self, "_file", None)  # none if on_fit_begin never ran
        if file is not None:
            file.close()
        self._file = self._writer = None  # open files do not pickle nor copy

    def __getstate__(self) -> dict[str, Any]:
        # The estimator may be pickled during its fit (a checkpoint from a callback):
        # the open file stays with this process; a copy writes nothing more.
        state = self.__dict__.copy()
        state["_file"] = state["_writer"] = None
        return state


class EarlyStopping(Callback):
    """Stop when a value of the epoch record stops improving; keep the best epoch.

    An epoch improves when its ``metric`` beats the best so far by more than ``tol``
    (a loss: lower; the monitor: higher). After ``patience`` epochs in a row without
    improvement the fit ends; when it ends (also when it ran out of epochs first) the
    weights, optimiser state and adversary of the best epoch are put back with
    ``restore_best``. A fit that fails keeps what it has.

    ``ACTEncoder(early_stopping=True)`` is the shortcut for the held-out validation
    loss: it holds out ``validation_fraction`` of the data and stops on its loss with
    ``patience=n_iter_no_change`` and ``tol``. This callback follows that loss too
    (``metric="validation_loss"``, which needs ``early_stopping=True`` for the held-out
    data), or the monitor's estimate, or the training loss.

    Parameters
    ----------
    metric : {"monitor", "validation_loss", "loss"}, default="monitor"
        ``"monitor"``: the monitor's estimate (``monitor_curve_``: the few-shot 1-NN
        accuracy of the labeled rows with labels, else the effective rank).
    patience : int, default=10
        Epochs without improvement before stopping.
    tol : float, default=1e-4
        Smallest improvement that counts.
    restore_best : bool, default=True
        Put back the best epoch's state at the end; False keeps the last epoch's.

    Examples
    --------
    >>> import numpy as np
    >>> from skact import ACTEncoder
    >>> from skact.callbacks import EarlyStopping
    >>> X = np.random.default_rng(0).normal(size=(64, 5))
    >>> stop = EarlyStopping("loss", patience=2, tol=1e9)  # nothing counts as better
    >>> ACTEncoder(4, hidden_layer_sizes=(8,), max_iter=10, random_state=0,
    ...            callbacks=[stop]).fit(X).n_iter_
    3
    """

    def __init__(
        self,
        metric: str = "monitor",
        patience: int = 10,
        tol: float = 1e-4,
        restore_best: bool = True,
    ) -> None:
        self.metric = metric
        self.patience = patience
        self.tol = tol
        self.restore_best = restore_best

    def _trainer_callback(
        self, monitor_name: str, has_validation: bool
    ) -> _callbacks.EarlyStopping:
        """The trainer's early stopping that does this callback's work (it needs the
        trainer's snapshots to put the best epoch back)."""
        if self.metric not in ("monitor", "validation_loss", "loss"):
            raise ValueError(
                f"EarlyStopping(metric={self.metric!r}): use 'monitor', "
                "'validation_loss' or 'loss'."
            )
        if not (isinstance(self.patience, int) and self.patience >= 1):
            raise ValueError(
                f"EarlyStopping(patience={self.patience!r}): use an integer of at least 1."
            )
        if self.metric == "validation_loss" and not has_validation:
            raise ValueError(
                "EarlyStopping(metric='validation_loss') follows the loss of held-out "
                "data, which only early_stopping=True holds out (early_stopping=True "
                "alone already stops on it: tune it with n_iter_no_change and tol). "
                "Set early_stopping=True, or use metric='monitor' or 'loss'."
            )
        key = monitor_name if self.metric == "monitor" else self.metric
        return _callbacks.EarlyStopping(
            self.patience,
            self.tol,
            restore_best=self.restore_best,
            key=key,
            maximize=self.metric == "monitor",
        )
