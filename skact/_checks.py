"""Checks of what a fit is given: input values and shapes, and the memory they need.

Each check raises an error that names the fix, as text and as data (:class:`Advice`,
:class:`AdvisedValueError`, which the ``skact`` command renders as its options). None
of them changes the estimator; the guards around training itself (rollback, Ctrl-C,
out-of-memory back-off) live in :mod:`skact._guards`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import validate_data

#: Largest magnitude a feature may have: the network computes in float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)


# ----------------------------------------------------------------------- input values


def validate_table(estimator: Any, X: Any, *, reset: bool) -> np.ndarray:
    """``validate_data`` for numeric tables, with messages that name the fix.

    sklearn's checks (dimensions, sample and feature counts, sparse input, feature
    names) are kept; non-numeric, complex, non-finite and float32-overflowing values
    get skact's own messages.

    Parameters
    ----------
    estimator : ACTEncoder
        The estimator (for ``n_features_in_`` and ``feature_names_in_``).
    X : array-like of shape (n_samples, n_features)
        User data.
    reset : bool
        True in ``fit`` (record the features), False in ``transform``.

    Returns
    -------
    ndarray of shape (n_samples, n_features), float32 or float64
    """
    name = type(estimator).__name__
    # Non-float input becomes the first of these. float32 holds integers exactly only up
    # to 2**24, so 32- and 64-bit integers (timestamps, ids, counts) become float64.
    floats = (np.float64, np.float32) if _wide_integers(X) else (np.float32, np.float64)
    try:
        X_checked = validate_data(
            estimator,
            X,
            reset=reset,
            dtype=floats,
            ensure_all_finite=False,
            ensure_min_samples=1,
        )
    except ValueError as exc:
        message = str(exc)
        if message.startswith("could not convert string to float"):
            raise ValueError(
                f"{name} needs numeric input, but X contains strings ({message}). Encode "
                "text or categorical columns first, e.g. with OneHotEncoder in a "
                "ColumnTransformer."
            ) from None
        if message.startswith("Complex data not supported"):
            raise ValueError(
                f"Complex data not supported: {name} needs real numbers. Pass the real "
                "and imaginary parts as separate columns, np.hstack([X.real, X.imag]), "
                "or np.abs(X)."
            ) from None
        raise
    check_values(X_checked, name, columns=getattr(X, "columns", None))
    return X_checked


def _wide_integers(X: Any) -> bool:
    """Whether ``X`` (an array or a DataFrame) has an integer column of 32 bits or more.

    Only dtypes known without converting ``X`` are looked at (those of an array, or the
    columns of a pandas DataFrame, nullable integers included); lists count as not.
    """
    dtypes = getattr(X, "dtypes", None)
    candidates = list(dtypes) if dtypes is not None else [getattr(X, "dtype", None)]
    for dtype in candidates:
        try:
            dtype = np.dtype(getattr(dtype, "numpy_dtype", dtype))
        except (TypeError, ValueError):  # not a numpy dtype (polars, torch): skip
            continue
        if dtype.kind in "iu" and dtype.itemsize >= 4:
            return True
    return False


@dataclasses.dataclass(frozen=True)
class Advice:
    """The fix an error suggests, as data, so that a front end can say it in its terms.

    The exception's message says the fix in Python's terms (``handle_missing=
    'indicator'``); the ``skact`` command renders the same advice as its options
    (``--handle-missing indicator``) instead of rewriting the message.

    Attributes
    ----------
    problem : str
        What is wrong: the message without its advice.
    reason : {"nan", "inf", "range", "diverged", "diverged_at_start", "device"}
        Which advice follows. ``"diverged"``: training diverged, lower a parameter;
        ``"diverged_at_start"``: the loss or its gradient was already non-finite before
        any update, so the learning rate is not the cause (the weights the fit started
        from are, or extreme values in X).
    parameters : dict
        ACTEncoder parameter -> value: the setting that fixes the problem (``"nan"``:
        ``{"handle_missing": "indicator"}``; ``"diverged_at_start"`` of a fit that
        continued a model: ``{"warm_start": False}``), or the current value of each
        parameter to lower (``"diverged"``).
    """

    problem: str
    reason: str
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)


class AdvisedValueError(ValueError):
    """A ValueError whose advice is also given as data (:class:`Advice`).

    Parameters
    ----------
    message : str
        The whole message, advice included, in the API's terms.
    advice : Advice
    """

    def __init__(self, message: str, advice: Advice) -> None:
        super().__init__(message)
        self.advice = advice


#: How each value check's message ends: what to do about it, in the API's terms.
ADVICE = {
    "nan": "{name} encodes missing values itself with handle_missing='indicator'; or "
    "impute them first, e.g. make_pipeline(SimpleImputer(), {name}()).",
    "inf": "{name} needs finite values: clip them, or set them to NaN and impute them "
    "(SimpleImputer).",
    "range": "Rescale those columns first (e.g. a log transform or StandardScaler).",
}
#: The parameter settings each advice names.
_ADVISED_SETTINGS: dict[str, dict[str, Any]] = {
    "nan": {"handle_missing": "indicator"},
    "inf": {},
    "range": {},
}


def check_values(
    X: np.ndarray,
    name: str = "ACTEncoder",
    columns: Any = None,
    *,
    allow_nan: bool = False,
    allow_huge: bool = False,
) -> None:
    """Raise an :class:`AdvisedValueError` naming the columns if ``X`` holds NaN, inf or
    huge values.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float
        Validated data.
    name : str, default="ACTEncoder"
        Estimator name for the messages.
    columns : sequence or None
        Column names (a DataFrame's), used in the messages instead of indices.
    allow_nan : bool, default=False
        Accept NaN (missing values, which ``handle_missing="indicator"`` encodes).
    allow_huge : bool, default=False
        Accept values beyond float32's range (the mixed-table path standardises in
        float64).
    """

    def fail(problem: str, reason: str) -> AdvisedValueError:
        advice = Advice(problem, reason, dict(_ADVISED_SETTINGS[reason]))
        return AdvisedValueError(problem + " " + ADVICE[reason].format(name=name), advice)

    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(np.sum(X, dtype=np.float64))  # sklearn's fast path
    if not finite:
        bad = np.isnan(X).any(axis=0)
        if bad.any() and not allow_nan:
            raise fail(
                f"Input X contains NaN (in column(s) {_columns(bad, columns)}).", "nan"
            )
        bad = np.isinf(X).any(axis=0)
        if bad.any():
            raise fail(
                f"Input X contains infinity (in column(s) {_columns(bad, columns)}).",
                "inf",
            )
    if X.dtype == np.float64 and not allow_huge:
        bad = (X.max(axis=0) > FLOAT32_MAX) | (X.min(axis=0) < -FLOAT32_MAX)
        if bad.any():
            raise fail(
                f"Input X has values beyond float32's range (|x| > {FLOAT32_MAX:.3g}) in "
                f"column(s) {_columns(bad, columns)}; {name} computes in float32.",
                "range",
            )


def check_output(features: np.ndarray, name: str = "ACTEncoder") -> None:
    """Raise a ValueError if ``transform`` produced NaN or infinite features.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_components)
        ``transform``'s output.
    name : str, default="ACTEncoder"
        Estimator name for the message.
    """
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        rows = _columns(bad, None)
        raise ValueError(
            f"{name}.transform produced non-finite features for {int(bad.sum())} of "
            f"{len(features)} samples (rows {rows}): their values are probably far "
            "outside the range seen in fit. Check those rows, or clip X to that range."
        )


def _columns(mask: np.ndarray, names: Any, limit: int = 5) -> str:
    """The first ``limit`` flagged columns, by name when there are names."""
    index = np.flatnonzero(mask)
    labels = [str(names[i]) if names is not None else str(i) for i in index[:limit]]
    more = f" and {len(index) - limit} more" if len(index) > limit else ""
    return ", ".join(labels) + more


# ---------------------------------------------------------------------- memory checks

#: Bytes per network parameter in training: float32 weights, their gradients and
#: Adam's two moments.
TRAINING_BYTES_PER_PARAMETER = 16


def available_memory(device: torch.device) -> int | None:
    """Bytes that new tensors on ``device`` can take, or None where that is unknown.

    On CUDA, the device's free memory (``torch.cuda.mem_get_info``). On the CPU, the
    smallest of what the system can give (``MemAvailable`` of /proc/meminfo, else the
    physical memory), what the process's cgroup still allows (containers) and what
    its address-space limit (``ulimit -v``) leaves. psutil is not a dependency: this
    reads the same sources, and knows nothing on other systems (Windows: None).

    Parameters
    ----------
    device : torch.device

    Returns
    -------
    int or None
    """
    if device.type == "cuda":
        try:
            free = int(torch.cuda.mem_get_info(device)[0])
            # Blocks torch's caching allocator holds but no tensor uses (an earlier
            # fit's, in a search) are free to this process too.
            cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(
                device
            )
            return free + max(int(cached), 0)
        except (RuntimeError, AssertionError, ValueError):
            return None
    if device.type != "cpu":
        return None
    limits = [_system_available(), _cgroup_available(), _address_space_left()]
    known = [n for n in limits if n is not None]
    return min(known) if known else None


def _read_number(path: str, key: str | None = None) -> int | None:
    """The integer in file ``path`` (after ``key:`` on its line when given), or None.

    Values in kB (``/proc``) are returned in bytes; ``max`` (no limit) is None.
    """
    try:
        with open(path, encoding="ascii") as f:
            text = f.read(1 << 16)
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines() if key is not None else [text]:
        name, _, value = line.partition(":") if key is not None else ("", "", line)
        if key is not None and name.strip() != key:
            continue
        fields = value.split()
        if not fields or not fields[0].isdigit():
            return None
        return int(fields[0]) * (1024 if fields[1:2] == ["kB"] else 1)
    return None


def _system_available() -> int | None:
    available = _read_number("/proc/meminfo", "MemAvailable")
    if available is not None:
        return available
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _cgroup_available(root: str = "/sys/fs/cgroup") -> int | None:
    """What the process's cgroup still allows (v2, else v1 under ``root``), or None."""
    for folder, limit, usage in (
        (root, "memory.max", "memory.current"),
        (f"{root}/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"),
    ):
        cap, used = _read_number(f"{folder}/{limit}"), _read_number(f"{folder}/{usage}")
        if cap is not None and used is not None and cap < 1 << 60:  # v1: "no limit"
            # The usage counts the page cache, which the kernel reclaims before it
            # refuses memory: reading a large file just before fit must not count.
            cache = _read_stat(f"{folder}/memory.stat", _CACHE_KEYS)
            return max(cap - used + (cache or 0), 0)
    return None


#: The reclaimable page cache in a cgroup's memory.stat (v2, v1).
_CACHE_KEYS = ("inactive_file", "total_inactive_file")


def _read_stat(path: str, keys: tuple[str, ...]) -> int | None:
    """The first of ``keys`` in a cgroup ``memory.stat`` file (``key value`` lines)."""
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read(1 << 16).splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    values = dict(line.split(maxsplit=1) for line in lines if " " in line)
    for key in keys:
        if values.get(key, "").strip().isdigit():
            return int(values[key])
    return None


def _address_space_left() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    used = _read_number("/proc/self/status", "VmSize")
    if soft == resource.RLIM_INFINITY or used is None:
        return None
    return max(soft - used, 0)
