"""SCARF corruption of table rows: the CPU sampler of corrupted cells and both paths.

On the CPU the corrupted cells are drawn as geometric gaps (``_bernoulli_cells``) and
only they get a donor row; accelerators draw a uniform and a donor for every cell
(``_corrupt_everywhere``). Both must give views of the same distribution: each cell
replaced independently with probability ``corruption_rate`` by the same column of a
uniformly drawn row.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skact.augment.tabular import (
    TabularAugment,
    _bernoulli_cells,
    _corrupt_everywhere,
    _corrupt_on_cpu,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- the cell sampler


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    n_cells=st.integers(0, 3000),
    rate=st.floats(1e-4, 1.0),
    draws=st.integers(1, 50),
    seed=st.integers(0, 2**31),
)
def test_cells_are_sorted_distinct_in_range_and_batching_keeps_the_sequence(
    n_cells: int, rate: float, draws: int, seed: int
) -> None:
    cells = _bernoulli_cells(n_cells, rate, _gen(seed))
    assert cells.dtype == torch.int64
    assert bool((cells.diff() > 0).all())
    assert cells.numel() == 0 or (0 <= int(cells[0]) and int(cells[-1]) < n_cells)
    # Small batches continue the same gaps: the same uniforms give the same cells.
    small_batches = _bernoulli_cells(n_cells, rate, _gen(seed), draws=draws)
    assert torch.equal(small_batches, cells)


def test_edge_rates_and_sizes() -> None:
    assert _bernoulli_cells(0, 0.3, _gen()).numel() == 0
    assert _bernoulli_cells(7, 1.0, _gen()).tolist() == list(range(7))
    # A rate so small that a single gap passes float32's range of exact integers.
    cells = _bernoulli_cells(10_000_000, 1e-7, _gen())
    assert cells.numel() < 10
    assert bool((cells >= 0).all() and (cells < 10_000_000).all())


def test_gaps_follow_the_geometric_law_by_hand() -> None:
    """One uniform per gap: gap = floor(log(1 - u) / log(1 - rate))."""
    rate = 0.3
    u = torch.rand(40, generator=_gen(4))
    expected, position = [], -1
    for value in u.tolist():
        position += 1 + math.floor(math.log1p(-value) / math.log1p(-rate))
        if position >= 50:
            break
        expected.append(position)
    cells = _bernoulli_cells(50, rate, _gen(4), draws=40)
    assert cells.tolist() == expected


@pytest.mark.parametrize("rate", [1e-46, 1e-3, 0.5])
def test_a_uniform_of_zero_is_a_gap_of_zero(monkeypatch, rate: float) -> None:
    """log(1 - 0) / log(1 - rate) is 0, also where log(1 - rate) underflows float32
    (it was 0 / 0: NaN, then a negative index)."""
    from skact.augment import tabular

    def zeros(size, generator=None, dtype=torch.float32):
        return torch.zeros(size, dtype=dtype)

    monkeypatch.setattr(tabular.torch, "rand", zeros)
    assert _bernoulli_cells(6, rate, _gen()).tolist() == list(range(6))


def test_gaps_beyond_float32_integers_are_not_rounded() -> None:
    """On a grid of 2**30 cells at rate 1e-8 the first hit is ~1e8 cells in: rounded
    to float32 it is always even, and a multiple of 8 in most draws."""
    counts = np.zeros(8)
    for seed in range(400):
        cells = _bernoulli_cells(2**30, 1e-8, _gen(seed))
        counts[int(cells[0]) % 8] += 1
    chi2 = float(((counts - 50) ** 2 / 50).sum())
    assert chi2 < 7 + 5 * math.sqrt(14), counts


@pytest.mark.parametrize("rate", [0.02, 0.2, 0.7])
def test_cells_are_independent_trials_with_the_rate(rate: float) -> None:
    rows, width = 4000, 40
    hits = torch.zeros(rows * width, dtype=torch.bool)
    hits[_bernoulli_cells(rows * width, rate, _gen(1))] = True
    grid = hits.view(rows, width).double()
    sd = math.sqrt(rate * (1 - rate))
    # the overall rate, and every position's rate, within 5 standard errors
    assert abs(grid.mean().item() - rate) < 5 * sd / math.sqrt(rows * width)
    assert (grid.mean(0) - rate).abs().max().item() < 5 * sd / math.sqrt(rows)
    # hits per row: binomial variance (clumped or spread hits would change it)
    per_row = grid.sum(1)
    variance = width * rate * (1 - rate)
    assert abs(per_row.var().item() / variance - 1) < 0.15
    # neighbours are independent: P(hit at i and i + 1) = rate**2
    pairs = (hits[1:] & hits[:-1]).double().mean().item()
    assert abs(pairs - rate**2) < 5 * math.sqrt(rate**2 / (rows * width))


# ---------------------------------------------------------------- the views


def _coded_pool(m: int, d: int) -> torch.Tensor:
    """A pool whose value names its row and column: ``pool[r, j] = r * d + j``."""
    return torch.arange(m * d, dtype=torch.float32).view(m, d)


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4, 1.0])
def test_cpu_views_replace_exactly_the_drawn_cells_from_the_drawn_donors(
    rate: float,
) -> None:
    m, d = 500, 7
    pool = torch.randn(m, d, generator=_gen(1))
    x = pool[:40]
    view = TabularAugment(corruption_rate=rate)(x, pool, _gen(0))
    gen = _gen(0)  # the same draws, in the same order
    cells = _bernoulli_cells(40 * d, rate, gen) if rate > 0 else torch.empty(0)
    donors = torch.randint(0, m, cells.shape, generator=gen)
    expected = x.clone()
    for cell, donor in zip(cells.tolist(), donors.tolist(), strict=True):
        expected[cell // d, cell % d] = pool[donor, cell % d]
    assert torch.equal(view, expected)


def test_cpu_groups_take_all_their_columns_from_one_donor() -> None:
    m, d = 300, 5
    groups = torch.tensor([0, 0, 1, 2, 2])  # (value, indicator) pairs and a single
    pool = _coded_pool(m, d)
    x = torch.full((200, d), -1.0)  # no pool value: kept cells read -1
    view = _corrupt_on_cpu(x, pool, _gen(3), 0.4, groups, 3)
    gen = _gen(3)
    cells = _bernoulli_cells(200 * 3, 0.4, gen)
    donors = torch.randint(0, m, cells.shape, generator=gen)
    expected = x.clone()
    for cell, donor in zip(cells.tolist(), donors.tolist(), strict=True):
        row, group = divmod(cell, 3)
        for column in (groups == group).nonzero().squeeze(1).tolist():
            expected[row, column] = pool[donor, column]
    assert torch.equal(view, expected)


@pytest.mark.parametrize("groups", [None, torch.tensor([0, 0, 1, 2])])
def test_cpu_and_accelerator_paths_draw_views_of_one_distribution(
    groups: torch.Tensor | None,
) -> None:
    """Per column: the share of replaced cells; per donor: a uniform row histogram."""
    m, d, n, rate = 50, 4, 20_000, 0.3
    k = d if groups is None else 3
    pool = _coded_pool(m, d)
    x = torch.full((n, d), -1.0)
    for corrupt in (_corrupt_on_cpu, _corrupt_everywhere):
        view = corrupt(x, pool, _gen(11), rate, groups, k)
        replaced = view >= 0
        share = replaced.double().mean(0)
        assert (share - rate).abs().max().item() < 5 * math.sqrt(rate * (1 - rate) / n)
        if groups is not None:  # a group's columns are replaced together
            assert torch.equal(replaced[:, 0], replaced[:, 1])
        donor = (view[replaced] // d).long()
        column = (view[replaced] % d).long()
        # every replaced cell came from its own column of the pool
        assert torch.equal(column, replaced.nonzero()[:, 1])
        counts = np.bincount(donor.numpy(), minlength=m)
        expected = donor.numel() / m
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < m - 1 + 5 * math.sqrt(2 * (m - 1))  # 5 sd above its mean


def test_cpu_views_cost_random_numbers_for_the_corrupted_cells_only() -> None:
    """At rate 0.2 a view draws about 0.2 * 2 numbers per cell, not 2 per cell."""
    pool = torch.randn(1000, 64, generator=_gen())
    gen = _gen(5)
    before = gen.get_state().clone()
    TabularAugment(0.2)(pool, pool, gen)
    # The generator's offset is opaque; count draws by replaying them instead.
    replay = torch.Generator()
    replay.set_state(before)
    cells = _bernoulli_cells(pool.numel(), 0.2, replay)
    torch.randint(0, 1000, cells.shape, generator=replay)
    assert torch.equal(replay.get_state(), gen.get_state())
    assert abs(cells.numel() / pool.numel() - 0.2) < 0.01


# ------------------------------------------------- parameters and ACTEncoder's views


def test_parameters_clone_set_compare_and_validate() -> None:
    from sklearn.base import clone
    from sklearn.utils._param_validation import InvalidParameterError

    aug = TabularAugment(corruption_rate=0.3, noise_scale=0.1)
    assert aug.get_params() == {"corruption_rate": 0.3, "noise_scale": 0.1}
    copy = clone(aug)
    assert copy is not aug and copy == aug
    assert copy.set_params(corruption_rate=0.5) is copy
    assert copy != aug and aug.corruption_rate == 0.3
    assert repr(copy) == "TabularAugment(corruption_rate=0.5, noise_scale=0.1)"
    with pytest.raises(ValueError, match="invalid parameter 'flip_p'"):
        aug.set_params(flip_p=0.5)
    with pytest.raises(InvalidParameterError, match="'corruption_rate' parameter of Tab"):
        TabularAugment(corruption_rate=1.5).validate()
    with pytest.raises(InvalidParameterError, match="'noise_scale' parameter of Tab"):
        TabularAugment(noise_scale=-1).validate()
    TabularAugment("auto").validate()  # ACTEncoder resolves it
    with pytest.raises(ValueError, match="'auto' is resolved by ACTEncoder"):
        TabularAugment("auto")(torch.zeros(2, 3), torch.zeros(4, 3), _gen())


def test_table_views_come_from_the_shortcuts_or_from_augment() -> None:
    from skact.augment import ImageAugment
    from skact.augment.tabular import table_views

    # augment=None: the shortcuts, "auto" resolved as skact._auto says.
    assert table_views(None, "auto", 0.0, has_categorical=False) == TabularAugment(0.2)
    assert table_views(None, "auto", 0.1, has_categorical=True) == TabularAugment(0.1, 0.1)
    assert table_views(None, 0.4, 0.0, has_categorical=True) == TabularAugment(0.4)
    # A TabularAugment is used as given (a copy), "auto" resolved alike.
    given = TabularAugment(0.3, 0.05)
    built = table_views(given, "auto", 0.0, has_categorical=False)
    assert built == given and built is not given
    auto = TabularAugment("auto", 0.05)
    assert table_views(auto, "auto", 0.0, True) == TabularAugment(0.1, 0.05)
    assert auto.corruption_rate == "auto"  # the user's instance is untouched
    # A shortcut that agrees with augment is one value, not two.
    assert table_views(given, 0.3, 0.05, False) == given
    for shortcut in ({"corruption_rate": 0.2}, {"noise_scale": 0.5}):
        values = {"corruption_rate": "auto", "noise_scale": 0.0, **shortcut}
        name = next(iter(shortcut))
        with pytest.raises(ValueError, match=rf"{name}=.* and augment=.* both set"):
            table_views(given, has_categorical=False, **values)
    for other in (ImageAugment(), lambda images, generator: images):
        with pytest.raises(ValueError, match="makes views of images, but X is a table"):
            table_views(other, "auto", 0.0, has_categorical=False)
    with pytest.raises(ValueError, match="'noise_scale' parameter of TabularAugment"):
        table_views(TabularAugment(noise_scale=-1.0), "auto", 0.0, False)


def test_refuse_table_views_for_images_names_the_parameter() -> None:
    from skact.augment import ImageAugment
    from skact.augment.tabular import refuse_table_views

    refuse_table_views(None, "auto", 0.0)
    refuse_table_views(ImageAugment(), "auto", 0.0)
    with pytest.raises(ValueError, match="makes views of table rows, but X holds imag"):
        refuse_table_views(TabularAugment(), "auto", 0.0)
    with pytest.raises(ValueError, match=r"corruption_rate=0\.3 sets the views of table"):
        refuse_table_views(None, 0.3, 0.0)
    with pytest.raises(ValueError, match=r"noise_scale=0\.1 sets the views of table"):
        refuse_table_views(None, "auto", 0.1)


class Negated(TabularAugment):
    """Views of one's own: TabularAugment's, negated (module level, so it pickles)."""

    calls = 0

    def __call__(self, *args, **kwargs):
        Negated.calls += 1
        return -super().__call__(*args, **kwargs)


def test_a_subclass_of_tabular_augment_makes_the_views_and_is_not_saved(tmp_path):
    """A TabularAugment subclass given as augment= draws the views (it is not rebuilt
    as a plain TabularAugment); its code is not saved, so save refuses it and pickling
    keeps it."""
    import pickle

    from skact import ACTEncoder

    X = np.random.default_rng(0).normal(size=(60, 5))
    params = dict(
        max_iter=2, random_state=0, hidden_layer_sizes=(8,), n_components=4,
        projection_dim=4,
    )  # fmt: skip
    own = ACTEncoder(**params, augment=Negated(0.3)).fit(X)
    plain = ACTEncoder(**params, augment=TabularAugment(0.3)).fit(X)
    assert Negated.calls > 0
    assert type(own._adapter.augment) is Negated
    assert not np.allclose(own.transform(X), plain.transform(X))
    with pytest.raises(TypeError, match=r"Negated.*code of one's own"):
        own.save(tmp_path / "own.skact")
    again = pickle.loads(pickle.dumps(own))
    np.testing.assert_array_equal(again.transform(X), own.transform(X))
