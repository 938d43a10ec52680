"""SCARF-style corruption of table rows, batched on the training device."""

from __future__ import annotations

import copy
import math
from numbers import Real
from typing import Any, ClassVar

import torch
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from torch import Tensor

from .._auto import table_corruption_rate
from .._params import ParamsMixin

__all__ = ["TabularAugment"]

#: ``ACTEncoder``'s shortcuts for a table's views, with their defaults: they build the
#: views when ``augment`` is None (see :func:`table_views`).
SHORTCUTS = {"corruption_rate": "auto", "noise_scale": 0.0}


class TabularAugment(ParamsMixin):
    """Random views of table rows: feature corruption plus optional Gaussian noise.

    For each view, every cell of a row is independently replaced with probability
    ``corruption_rate`` by the value of the same feature in a row drawn uniformly from
    ``pool`` (the empirical marginal of that feature, as in SCARF); then Gaussian noise of
    standard deviation ``noise_scale`` is added. Everything is a few batched tensor
    operations on the device of ``pool``; randomness comes from the generator passed in.
    On the CPU random numbers are drawn for the corrupted cells only (the gaps between
    them, and their donor rows); accelerators draw a uniform and a donor row for every
    cell, which needs no data-dependent shapes. The views have the same distribution;
    the same seed gives different views on the two.

    It is ``ACTEncoder``'s ``augment`` for tables, a nested parameter with
    ``get_params`` / ``set_params`` (as :class:`~skact.augment.ImageAugment` is for
    images): ``ACTEncoder(augment=TabularAugment(noise_scale=0.1))`` clones, saves and
    grid-searches as ``augment__corruption_rate``. ``ACTEncoder``'s own
    ``corruption_rate`` and ``noise_scale`` are shortcuts for it, used when
    ``augment`` is None (:func:`table_views`).

    Parameters
    ----------
    corruption_rate : float or "auto", default=0.2
        Probability that a cell is replaced. ``"auto"`` (``ACTEncoder`` only, which
        resolves it before drawing views): 0.1 for a table with a categorical column,
        0.2 for one of numbers only (:func:`skact._auto.table_corruption_rate`).
    noise_scale : float, default=0.0
        Standard deviation of the additive noise (features are standardised first).

    See Also
    --------
    skact.augment.ImageAugment : Views of images.

    Examples
    --------
    >>> import torch
    >>> pool = torch.arange(12.0).reshape(4, 3)
    >>> aug = TabularAugment(corruption_rate=0.0)
    >>> torch.equal(aug(pool[:2], pool, torch.Generator().manual_seed(0)), pool[:2])
    True
    >>> from sklearn.base import clone
    >>> clone(TabularAugment(noise_scale=0.1)).set_params(corruption_rate=0.3)
    TabularAugment(corruption_rate=0.3, noise_scale=0.1)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "corruption_rate": [Interval(Real, 0, 1, closed="both"), StrOptions({"auto"})],
        "noise_scale": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self, corruption_rate: float | str = 0.2, noise_scale: float = 0.0
    ) -> None:
        self.corruption_rate = corruption_rate
        self.noise_scale = noise_scale

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.get_params() == other.get_params()

    # Compared by value and mutable, so unhashable (what Python does for a class that
    # defines __eq__ alone); mypy expects a method in this slot.
    __hash__ = None  # type: ignore[assignment]

    def validate(self) -> None:
        """Raise a ValueError naming the first parameter out of range.

        Raises
        ------
        sklearn.utils._param_validation.InvalidParameterError
            A ValueError and TypeError whose message names the parameter.
        """
        validate_parameter_constraints(
            self._parameter_constraints, self.get_params(), caller_name="TabularAugment"
        )

    def __call__(
        self,
        x: Tensor,
        pool: Tensor,
        generator: torch.Generator,
        groups: Tensor | None = None,
        n_groups: int | None = None,
        noisy: int | None = None,
    ) -> Tensor:
        """Return one random view of the rows ``x``.

        Parameters
        ----------
        x : Tensor of shape (n, d)
            Standardised rows to corrupt.
        pool : Tensor of shape (m, d)
            Rows whose values replace corrupted cells (the training data).
        generator : torch.Generator
            Source of randomness, on the device of ``x`` or on the CPU (for devices
            without generators, such as MPS: the numbers are drawn there and moved).
        groups : Tensor of int64 of shape (d,), optional
            Group of each column, on the device of ``x``: the columns of a group are
            corrupted together, from one donor row (a value and its missing-value
            indicator). None: every column is its own group.
        n_groups : int, optional
            Number of groups (``groups`` takes the values ``0 .. n_groups - 1``); needed
            with ``groups``, given by the caller so that no device value is read.
        noisy : int, optional
            Add the noise to the first ``noisy`` columns only (the numeric ones of a
            mixed table). None: to every column.

        Returns
        -------
        Tensor of shape (n, d)
        """
        if isinstance(self.corruption_rate, str):
            raise ValueError(
                f"corruption_rate={self.corruption_rate!r} is resolved by ACTEncoder; "
                "give TabularAugment a rate in [0, 1] to draw views with it directly."
            )
        n, d = x.shape
        view = x
        if self.corruption_rate > 0:
            k = d if groups is None else n_groups
            if k is None:
                raise ValueError("n_groups is needed with groups")
            corrupt = _corrupt_on_cpu if x.device.type == "cpu" else _corrupt_everywhere
            view = corrupt(x, pool, generator, self.corruption_rate, groups, k)
        width = d if noisy is None else noisy
        if self.noise_scale > 0 and width:
            noise = torch.randn(
                n, width, generator=generator, device=generator.device, dtype=x.dtype
            ).to(x.device)
            if width == d:
                view = view + self.noise_scale * noise
            else:
                view = torch.cat(
                    [view[:, :width] + self.noise_scale * noise, view[:, width:]], 1
                )
        return view


def table_views(
    augment: Any, corruption_rate: float | str, noise_scale: float, has_categorical: bool
) -> TabularAugment:
    """The views of a table for ``ACTEncoder``'s ``augment``, ``corruption_rate`` and
    ``noise_scale``, with ``"auto"`` resolved.

    ``augment=None`` builds the views from the two shortcuts. A
    :class:`TabularAugment`, or a subclass of it with views of its own, is used as it
    is (a copy: fitting never changes it); a
    shortcut set away from its default must then agree with it, since two different
    values for one setting would leave one of them ignored.

    Parameters
    ----------
    augment : TabularAugment, other or None
        ``ACTEncoder``'s ``augment``; anything but a TabularAugment or None (an
        :class:`~skact.augment.ImageAugment`, a callable) is refused.
    corruption_rate : float or "auto"
        ``ACTEncoder``'s shortcut for ``TabularAugment(corruption_rate=...)``.
    noise_scale : float
        ``ACTEncoder``'s shortcut for ``TabularAugment(noise_scale=...)``.
    has_categorical : bool
        Whether the table has a categorical column (what ``"auto"`` depends on).

    Returns
    -------
    TabularAugment
        A new instance (of ``augment``'s class) whose ``corruption_rate`` is a float.

    Raises
    ------
    ValueError
        For an ``augment`` that makes views of images, a shortcut that disagrees with
        ``augment``, or a parameter of ``augment`` out of range.

    Examples
    --------
    >>> table_views(None, "auto", 0.0, has_categorical=True)
    TabularAugment(corruption_rate=0.1, noise_scale=0.0)
    >>> table_views(TabularAugment(0.3), "auto", 0.0, has_categorical=True)
    TabularAugment(corruption_rate=0.3, noise_scale=0.0)
    """
    if augment is None:
        augment = TabularAugment(corruption_rate, noise_scale)
    elif not isinstance(augment, TabularAugment):
        raise ValueError(
            f"augment of type {type(augment).__name__} makes views of images, but X is a "
            "table: give a "
            "table's views as augment=TabularAugment(corruption_rate=..., "
            "noise_scale=...) (grid-searched as augment__corruption_rate), or "
            "augment=None to use corruption_rate and noise_scale."
        )
    else:
        given = {"corruption_rate": corruption_rate, "noise_scale": noise_scale}
        for name, default in SHORTCUTS.items():
            value, own = given[name], getattr(augment, name)
            if value != default and value != own:
                raise ValueError(
                    f"{name}={value!r} and augment={augment!r} both set the table "
                    f"views' {name}: set it in one place, use augment=TabularAugment("
                    f"{name}={value!r}) (augment__{name} in a grid search) with "
                    f"ACTEncoder's {name} left at its default {default!r}, or "
                    "augment=None."
                )
    augment.validate()
    rate = table_corruption_rate(augment.corruption_rate, has_categorical)
    # A copy of the user's views (a subclass keeps its own __call__), rate resolved.
    return copy.deepcopy(augment).set_params(corruption_rate=rate)


def refuse_table_views(
    augment: Any, corruption_rate: float | str, noise_scale: float
) -> None:
    """Raise naming the fix if ``ACTEncoder``'s table views are set for images.

    Parameters
    ----------
    augment : object
        ``ACTEncoder``'s ``augment``: a :class:`TabularAugment` is refused.
    corruption_rate, noise_scale
        ``ACTEncoder``'s table shortcuts: refused away from their defaults, which
        images would ignore.

    Raises
    ------
    ValueError
        Naming the parameter and what images take instead.
    """
    if isinstance(augment, TabularAugment):
        raise ValueError(
            "augment of type TabularAugment makes views of table rows, but X holds images: "
            "use an ImageAugment (or a callable views = augment(images, generator)), "
            "or augment=None for the default image views."
        )
    given = {"corruption_rate": corruption_rate, "noise_scale": noise_scale}
    for name, default in SHORTCUTS.items():
        if given[name] != default:
            raise ValueError(
                f"{name}={given[name]!r} sets the views of table rows, but X holds "
                f"images, which would ignore it: leave {name} at its default "
                f"{default!r} and use augment=ImageAugment(...) for image views."
            )


def _corrupt_everywhere(
    x: Tensor,
    pool: Tensor,
    generator: torch.Generator,
    rate: float,
    groups: Tensor | None,
    k: int,
) -> Tensor:
    """Corruption for accelerators: a uniform and a donor row for every cell.

    No step has a data-dependent shape (``nonzero`` would synchronise the device with
    the host), so every cell is gathered from the pool and kept or not.
    """
    n = x.shape[0]
    # Drawn where the generator lives: MPS has no generator of its own here, and
    # torch refuses a CPU generator for an MPS tensor.
    on = generator.device
    draw = torch.rand(n, k, generator=generator, device=on).to(x.device)
    rows = torch.randint(0, pool.shape[0], (n, k), generator=generator, device=on)
    rows = rows.to(x.device)
    mask = draw < rate
    if groups is not None:
        mask, rows = mask[:, groups], rows[:, groups]
    return torch.where(mask, pool.gather(0, rows), x)


def _corrupt_on_cpu(
    x: Tensor,
    pool: Tensor,
    generator: torch.Generator,
    rate: float,
    groups: Tensor | None,
    k: int,
) -> Tensor:
    """Corruption for the CPU: random numbers for the corrupted cells only.

    The corrupted cells of the ``(n, k)`` grid are drawn directly
    (:func:`_bernoulli_cells`), then one donor row for each, and only those cells are
    read from the pool: at the default rate this draws about a fifth of the random
    numbers of :func:`_corrupt_everywhere`, whose per-cell draws dominate the cost of
    a view on the CPU. The views follow the same distribution; the draws differ.
    """
    n, d = x.shape
    cells = _bernoulli_cells(n * k, rate, generator)
    donors = torch.randint(0, pool.shape[0], cells.shape, generator=generator)
    if groups is not None:  # a group's cells take its columns, from one donor row
        hit = torch.zeros(n * k, dtype=torch.bool).index_fill_(0, cells, True)
        donor_of = torch.zeros(n * k, dtype=torch.int64).index_copy_(0, cells, donors)
        hit = hit.view(n, k)[:, groups].reshape(-1)
        cells = hit.nonzero().squeeze(1)
        donors = donor_of.view(n, k)[:, groups].reshape(-1).index_select(0, cells)
    source = donors.mul_(d).add_(cells % d)  # flat index of (donor, column) in pool
    out = x.clone(memory_format=torch.contiguous_format)
    out.view(-1).index_copy_(0, cells, pool.reshape(-1).index_select(0, source))
    return out


def _bernoulli_cells(
    n_cells: int, rate: float, generator: torch.Generator, draws: int | None = None
) -> Tensor:
    """Indices of the cells hit by independent Bernoulli(``rate``) trials, in order.

    The gaps between successive hits are geometric, so they are drawn instead of one
    uniform per cell: ``floor(log(1 - u) / log(1 - rate))`` with ``u`` uniform. About
    ``rate * n_cells`` uniforms are drawn, in batches sized to cover all cells with
    overwhelming probability; a batch that ends early is followed by another. The
    uniforms are float32 (rounding comparable to ``torch.rand(n) < rate``), or float64
    where float32 could not hold the gaps exactly: more than ``2**24`` cells left, or a
    rate below ``2**-24`` (float32 uniforms could reach only some cells).

    Parameters
    ----------
    n_cells : int
        Number of trials.
    rate : float
        Success probability, in ``(0, 1]``.
    generator : torch.Generator
        CPU generator the uniforms come from.
    draws : int, optional
        Uniforms per batch (tests use a small value to exercise the follow-up
        batches). None: the expected number of hits plus six standard deviations.

    Returns
    -------
    Tensor of int64 of shape (n_hits,)
        Strictly increasing indices in ``[0, n_cells)``.

    Examples
    --------
    >>> import torch
    >>> _bernoulli_cells(5, 1.0, torch.Generator()).tolist()
    [0, 1, 2, 3, 4]
    """
    if rate >= 1:
        return torch.arange(n_cells)
    log_keep = math.log1p(-rate)
    found = [torch.empty(0, dtype=torch.int64)]
    start = 0  # the first cell not yet decided
    while start < n_cells:
        remaining = n_cells - start
        if draws is None:
            mean = rate * remaining
            size = int(mean + 6 * math.sqrt(mean * (1 - rate)) + 16)
        else:
            size = draws
        # float32 is exact enough while the gaps that matter (below `remaining`) are
        # integers it holds exactly and the rate is above its uniforms' resolution;
        # past that, float64 (whose uniforms are other draws). Either way a uniform of
        # 0 gives a gap of 0, never 0 / 0.
        exact = remaining <= 2**24 and rate >= 2**-24
        u = torch.rand(
            size, generator=generator, dtype=torch.float32 if exact else torch.float64
        )
        # Any gap of `remaining` or more ends the cells; the cap (with a margin for
        # float32 rounding) keeps the sums far from overflowing.
        gaps = u.neg_().log1p_().div_(log_keep).clamp_(max=2.0 * remaining).long()
        hits = gaps.add_(1).cumsum_(0).add_(start - 1)
        end = int(torch.searchsorted(hits, n_cells))
        found.append(hits[:end])
        if end < size:
            break
        start = int(hits[-1]) + 1
    return found[1] if len(found) == 2 else torch.cat(found)
