"""Guards around training: rollback, Ctrl-C, CUDA out-of-memory back-off, warnings.

Each guard is a small function or context the estimator or the trainer wraps around
its work; none of them knows about networks or objectives. Checks of the input and of
the memory a fit needs live in :mod:`skact._checks`.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:  # the trainer calls run_epoch_with_oom_retry: no import cycle
    from ._training import Trainer

#: CUDA out of memory halves the batch size down to this floor, then gives up.
OOM_MIN_BATCH_SIZE = 16


# --------------------------------------------------------------------------- rollback


def fitted_state(estimator: Any) -> dict[str, Any]:
    """The fitted attributes ``estimator`` holds, of those :mod:`skact._state` declares.

    Parameters
    ----------
    estimator : ACTEncoder

    Returns
    -------
    dict
        Attribute name -> value (the objects themselves, not copies), in declaration
        order.
    """
    from . import _state  # not at the top: _state imports _training, which imports this

    held = vars(estimator)
    return {f.name: held[f.name] for f in _state.FITTED_STATE if f.name in held}


class FitRollback:
    """The fitted state before a fit, to put back if the fit fails.

    It covers the fields of :data:`skact._state.FITTED_STATE`, each deep-copied unless
    the field says a fit never changes it (``copied=False``: the last fit's callbacks,
    which a fit replaces by fresh clones, and which may hold what cannot be copied).

    Parameters
    ----------
    estimator : ACTEncoder
        The estimator about to be fitted.
    keep : bool
        True when the fit continues the current model (``warm_start``,
        ``partial_fit``): the state is copied and restored on failure. False: a
        failure leaves the estimator unfitted, and nothing is copied.
    """

    def __init__(self, estimator: Any, keep: bool) -> None:
        from . import _state  # see fitted_state

        self.estimator = estimator
        self.fields = _state.FITTED_STATE
        state = fitted_state(estimator) if keep else {}
        by_reference = {f.name for f in self.fields if not f.copied}
        kept = {k: state.pop(k) for k in by_reference if k in state}
        # One deep copy of them all: objects two fields share stay shared.
        self.saved = {**copy.deepcopy(state), **kept}

    def restore(self) -> None:
        """Remove the state the failed fit left and put the saved state back."""
        held = vars(self.estimator)
        for field in self.fields:
            held.pop(field.name, None)
        for name, value in self.saved.items():
            setattr(self.estimator, name, value)


def keep_trained_model(exc: BaseException, note: str) -> None:
    """Mark ``exc`` as raised between epochs: the estimator keeps what it trained.

    For failures outside an optimisation step (the early-stopping validation loss),
    where the model is whole; :meth:`ACTEncoder.fit` then skips the rollback. ``note``
    is added to the error for the user.

    Parameters
    ----------
    exc : BaseException
        The error about to propagate.
    note : str
        What was kept, in the user's terms.
    """
    exc.add_note(note)
    # A marker on the exception itself (BaseException has no such attribute to type):
    # it travels with the error through the Trainer's re-raise to ACTEncoder.fit.
    exc.skact_keeps_model = True  # type: ignore[attr-defined]


def keeps_trained_model(exc: BaseException) -> bool:
    """Whether :func:`keep_trained_model` marked ``exc``.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    bool
    """
    return getattr(exc, "skact_keeps_model", False) is True


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the user's line.

    For ``warnings.warn`` called by the function that calls this one: the first frame
    outside skact and scikit-learn (whose ``fit`` wrappers and meta-estimators come in
    between), however deep in the training loop the warning is raised.

    Returns
    -------
    int
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        ("skact.", "sklearn.")
    ):
        frame, level = frame.f_back, level + 1
    return level


# --------------------------------------------------------------------------- Ctrl-C


def describe_training(n_epochs: int, n_steps: int) -> str:
    """What a kept model has been trained for, as a fit's messages say it.

    Parameters
    ----------
    n_epochs : int
        Complete epochs (``n_iter_``).
    n_steps : int
        Optimisation steps, those of an unfinished epoch included.

    Returns
    -------
    str

    Examples
    --------
    >>> describe_training(2, 17), describe_training(0, 1)
    ('2 complete epochs, 17 training steps', '0 complete epochs, 1 training step')
    """
    epochs = f"{n_epochs} complete epoch{'' if n_epochs == 1 else 's'}"
    return f"{epochs}, {n_steps} training step{'' if n_steps == 1 else 's'}"


@contextlib.contextmanager
def sigint_held() -> Iterator[None]:
    """Hold Ctrl-C back while the block runs, then deliver it: the block runs whole.

    For the few statements that change the training state (the optimiser's update of
    the weights and its moments, a restore): a KeyboardInterrupt raised among them
    would leave the weights half updated. A SIGINT that arrives meanwhile is recorded
    and handed, once the block is done, to the handler that was in place (so a second
    Ctrl-C still raises KeyboardInterrupt, right after the block). Outside the main
    thread (where Python never runs signal handlers) or when SIGINT has no Python
    handler, nothing is changed.
    """
    handler = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(handler):
        yield
        return
    held: list[tuple[int, Any]] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        for signum, frame in held:
            # The handler in force now: the first of two presses may have replaced it.
            now = signal.getsignal(signal.SIGINT)
            if callable(now):
                now(signum, frame)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C inside the block into a request the training loop polls.

    The trainer polls it after each step and, while steps are slow, before each layer
    and before the loss: a step under way is then abandoned before it changes the
    weights, so training stops within about one layer's time with the weights of the
    last complete step (see :class:`skact._training.Trainer`). A second Ctrl-C raises
    KeyboardInterrupt at once (for a layer that hangs), except inside the optimiser's
    update (:func:`sigint_held`); the trainer then keeps the steps completed so far.
    Outside the main thread, or when someone else handles SIGINT, nothing is installed
    and the block changes nothing.

    Yields
    ------
    callable
        ``requested() -> bool``: whether Ctrl-C was pressed.
    """
    requested = threading.Event()
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield requested.is_set
        return

    def handler(signum: int, frame: Any) -> None:
        requested.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# ------------------------------------------------------------------------ out of memory


def is_allocation_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is torch failing to allocate memory (CPU or CUDA).

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    bool
    """
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def run_epoch_with_oom_retry(
    trainer: Trainer, n_samples: int, take: Callable[[Any], Tensor]
) -> float:
    """Run one epoch; on CUDA out of memory, halve the batch size and run it again.

    The failed epoch's steps are undone by :meth:`Trainer.run_epoch`. The smaller batch
    size holds for the rest of the trainer's run (a warning says so) and the schedule's
    end is moved so the decay still spans the remaining epochs. Below
    :data:`OOM_MIN_BATCH_SIZE` a ``torch.cuda.OutOfMemoryError`` with advice is raised.

    Parameters
    ----------
    trainer : Trainer
    n_samples : int
        Size of the data.
    take : callable
        ``take(indices) -> batch`` on the device.

    Returns
    -------
    float
        The epoch's mean loss.
    """
    while True:
        try:
            return trainer.run_epoch(n_samples, take)
        except torch.cuda.OutOfMemoryError as exc:
            failed = trainer.batch_size
            if failed // 2 < OOM_MIN_BATCH_SIZE:
                raise torch.cuda.OutOfMemoryError(
                    f"CUDA ran out of memory even with batch_size={failed} (the retries "
                    f"halve it down to {OOM_MIN_BATCH_SIZE}). Free GPU memory held by "
                    "other processes or tensors, use a smaller encoder or smaller "
                    "inputs, or fit with device='cpu'."
                ) from exc
        # Retry outside the except block, so the traceback's tensors can be freed.
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        before = trainer.batch_count(n_samples)
        trainer.batch_size = failed // 2
        if trainer.total_steps is not None:
            done = trainer.step - trainer.schedule_start
            ratio = trainer.batch_count(n_samples) / before
            trainer.total_steps = done + round((trainer.total_steps - done) * ratio)
        warnings.warn(
            f"CUDA ran out of memory with batch_size={failed}; retrying the epoch with "
            f"batch_size={trainer.batch_size} for the rest of this fit.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
