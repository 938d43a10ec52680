"""Objectives against hand computations, and the two facts about ACT's adversary.

Every expected value here is computed independently of ``skact.objectives``: literal
numbers worked out by hand for ACT, and straight numpy transcriptions of each paper's
formula (with explicit loops where that makes the formula plainer) for the baselines.
"""

import math
from itertools import combinations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError

import skact
import skact._encoder
from skact import ACTEncoder
from skact.objectives import (
    OBJECTIVES,
    ACTCriterion,
    ACTLoss,
    Adversary,
    BarlowTwinsLoss,
    NTXentLoss,
    Objective,
    SpectralContrastiveLoss,
    VICRegLoss,
    act_loss,
    barlow_twins_loss,
    cross_correlation,
    make_objective,
    multiview_loss,
    nt_xent_loss,
    resolve_objective,
    scale_to_sqrt_dim,
    spectral_contrastive_loss,
    vicreg_loss,
)

# A 3x2 example chosen so that every row rescales to rational numbers: in d = 2 the rows
# get norm sqrt(2), and (2, 2) -> (1, 1), (7, 1) -> (1.4, 0.2), (-3, 3) -> (-1, 1).
Z1 = [[2.0, 2.0], [7.0, 1.0], [-3.0, 3.0]]
Z2 = [[1.0, 1.0], [1.0, 7.0], [1.0, -1.0]]
# Rescaled rows: z1 = (1, 1), (1.4, 0.2), (-1, 1); z2 = (1, 1), (0.2, 1.4), (1, -1).
# Alignment: row 1: 0; row 2: 1.2^2 + 1.2^2 = 2.88; row 3: 2^2 + 2^2 = 8.
ALIGNMENT = (0 + 2.88 + 8) / 3
# C_hat = (1/3) sum_i z1_i z2_i^T
#       = (1/3) ([[1, 1], [1, 1]] + [[0.28, 1.96], [0.04, 0.28]] + [[-1, 1], [1, -1]])
#       = (1/3) [[0.28, 3.96], [2.04, 0.28]].
C_HAT = [[0.28 / 3, 1.32], [0.68, 0.28 / 3]]
G = [[1.0, 2.0], [0.0, -1.0]]
# <C_hat - I, G> = (0.28/3 - 1) * 1 + 1.32 * 2 + 0.68 * 0 + (0.28/3 - 1) * (-1) = 2.64.
DUAL = 2.64
# ||C_hat - I||^2 = 2 (1 - 0.28/3)^2 + 1.32^2 + 0.68^2.
SQUARED = 2 * (1 - 0.28 / 3) ** 2 + 1.32**2 + 0.68**2


def t(a):
    return torch.tensor(a, dtype=torch.float64)


# ACTCriterion computes in float32 (it upcasts bf16 embeddings under autocast).
F32 = {"rel": 1e-6, "abs": 1e-6}

# ---------------------------------------------------------------------------- ACT


def test_scale_to_sqrt_dim_on_the_example():
    expected = [[1.0, 1.0], [1.4, 0.2], [-1.0, 1.0]]
    np.testing.assert_allclose(scale_to_sqrt_dim(t(Z1)).numpy(), expected, atol=1e-12)


def test_cross_correlation_on_the_example():
    z1, z2 = scale_to_sqrt_dim(t(Z1)), scale_to_sqrt_dim(t(Z2))
    np.testing.assert_allclose(cross_correlation(z1, z2).numpy(), C_HAT, atol=1e-12)


def test_act_loss_matches_hand_computation():
    loss = act_loss(t(Z1), t(Z2), t(G), alpha=0.5)
    assert float(loss) == pytest.approx(ALIGNMENT + 0.5 * DUAL, abs=1e-12)
    assert float(loss) == pytest.approx(4.946666666666667, abs=1e-12)


def test_act_loss_with_g_at_its_optimum_is_the_squared_regulariser():
    g = t(C_HAT) - torch.eye(2, dtype=torch.float64)
    loss = act_loss(t(Z1), t(Z2), g, alpha=0.1)
    assert float(loss) == pytest.approx(ALIGNMENT + 0.1 * SQUARED, abs=1e-12)


def test_act_loss_does_not_differentiate_through_g():
    g = t(G).requires_grad_()
    z1 = t(Z1).requires_grad_()
    act_loss(z1, t(Z2), g, alpha=0.5).backward()
    assert g.grad is None
    assert z1.grad is not None


def test_act_loss_is_invariant_to_row_scale():
    scaled = [[10 * v for v in row] for row in Z1]
    assert float(act_loss(t(scaled), t(Z2), t(G), 0.5)) == pytest.approx(
        float(act_loss(t(Z1), t(Z2), t(G), 0.5)), abs=1e-12
    )


def test_act_criterion_two_views_batch_mode_matches_hand_computation():
    criterion = ACTCriterion(0.1, Adversary("batch"))
    loss = criterion([t(Z1), t(Z2)])
    assert float(loss) == pytest.approx(ALIGNMENT + 0.1 * SQUARED, **F32)
    assert criterion.adversary.state is None  # "batch" keeps no state


def test_act_criterion_three_views_averages_pairs_with_shared_g():
    rng = np.random.default_rng(0)
    views = [rng.normal(size=(5, 3)) for _ in range(3)]
    alpha = 0.3
    scaled = [math.sqrt(3) * v / np.linalg.norm(v, axis=1, keepdims=True) for v in views]
    pairs = [(0, 1), (0, 2), (1, 2)]
    cs = {p: scaled[p[0]].T @ scaled[p[1]] / 5 for p in pairs}
    g = sum(cs.values()) / 3 - np.eye(3)
    per_pair = [
        np.mean(np.sum((scaled[i] - scaled[j]) ** 2, axis=1))
        + alpha * np.sum((cs[(i, j)] - np.eye(3)) * g)
        for i, j in pairs
    ]
    loss = ACTCriterion(alpha, Adversary("batch"))([t(v) for v in views])
    assert float(loss) == pytest.approx(np.mean(per_pair), **F32)


def test_act_criterion_previous_uses_last_steps_correlation():
    criterion = ACTCriterion(0.5, Adversary("previous"))
    criterion([t(Z1), t(Z2)])  # first step: G from the batch itself
    np.testing.assert_allclose(
        criterion.adversary.state.numpy(), np.array(C_HAT) - np.eye(2), atol=1e-6
    )
    # Second step on a batch with identical views: alignment 0, C_hat = (1/3) sum z z^T.
    loss = criterion([t(Z2), t(Z2)])
    c2 = (
        np.array([[1, 1], [1, 1]])
        + np.array([[0.04, 0.28], [0.28, 1.96]])
        + [[1, -1], [-1, 1]]
    ) / 3
    expected = 0.5 * np.sum((c2 - np.eye(2)) * (np.array(C_HAT) - np.eye(2)))
    assert float(loss) == pytest.approx(expected, **F32)
    np.testing.assert_allclose(criterion.adversary.state.numpy(), c2 - np.eye(2), atol=1e-6)


def test_adversary_ema_update_rule():
    adv = Adversary("ema", momentum=0.75)
    c1, c2, c3 = t([[2.0, 0.0], [0.0, 2.0]]), t([[1.0, 4.0], [0.0, 1.0]]), t([[0.0]] * 2)
    np.testing.assert_allclose(adv.get(c1).numpy(), np.eye(2))  # no past yet
    adv.update(c1)
    np.testing.assert_allclose(adv.state.numpy(), np.eye(2))  # first update: no blend
    adv.update(c2)
    np.testing.assert_allclose(
        adv.state.numpy(), 0.75 * np.eye(2) + 0.25 * np.array([[0.0, 4.0], [0.0, 0.0]])
    )
    # get ignores the current batch once there is a past.
    np.testing.assert_allclose(adv.get(c3).numpy(), adv.state.numpy())


def test_adversary_batch_mode_always_uses_current_batch():
    adv = Adversary("batch")
    adv.update(t([[5.0, 0.0], [0.0, 5.0]]))
    assert adv.state is None
    np.testing.assert_allclose(adv.get(t(C_HAT)).numpy(), np.array(C_HAT) - np.eye(2))


def test_adversary_get_is_detached():
    c = t(C_HAT).requires_grad_()
    assert not Adversary("batch").get(c).requires_grad


def test_adversary_state_dict_round_trip():
    adv = Adversary("ema", momentum=0.5)
    adv.update(t(C_HAT))
    other = Adversary("ema", momentum=0.9)
    other.load_state_dict(adv.state_dict())
    # The running estimate comes back; the mode and momentum stay those in force now
    # (issue 15, item 10: warm_start applies the parameters set now).
    assert (other.mode, other.momentum) == ("ema", 0.9)
    np.testing.assert_allclose(other.state.numpy(), adv.state.numpy())


def test_adversary_rejects_unknown_mode():
    with pytest.raises(ValueError, match="adversary must be one of"):
        Adversary("future")


# ---------------------------------------------------------------------------- baselines


def test_barlow_twins_matches_numpy_transcription():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    an = (a - a.mean(0)) / a.std(0)  # batch standardisation as BatchNorm does it
    bn = (b - b.mean(0)) / b.std(0)
    c = an.T @ bn / 6
    on = sum((1 - c[i, i]) ** 2 for i in range(3))
    off = sum(c[i, j] ** 2 for i in range(3) for j in range(3) if i != j)
    assert float(barlow_twins_loss(t(a), t(b), lambd=0.1)) == pytest.approx(
        on + 0.1 * off, rel=1e-4
    )


def test_barlow_twins_is_zero_for_identical_decorrelated_views():
    # Columns with zero mean, equal variance and no correlation: c = I exactly.
    z = t([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert float(barlow_twins_loss(z, z)) == pytest.approx(0.0, abs=1e-8)


def test_vicreg_matches_numpy_transcription():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 3)), 0.3 * rng.normal(size=(5, 3))  # b: low variance
    d = a.shape[1]
    invariance = np.mean((a - b) ** 2)

    def variance(z):
        return np.mean(np.maximum(0, 1 - np.sqrt(z.var(axis=0, ddof=1) + 1e-4)))

    def covariance(z):
        cov = np.cov(z, rowvar=False)  # divides by n - 1
        return sum(cov[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d

    expected = (
        25 * invariance
        + 25 * (variance(a) + variance(b))
        + 1 * (covariance(a) + covariance(b))
    )
    assert variance(b) > 0  # the example exercises the hinge
    assert float(vicreg_loss(t(a), t(b))) == pytest.approx(expected, rel=1e-10)


def test_spectral_contrastive_matches_numpy_transcription():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    n = 4
    positive = sum(a[i] @ b[i] for i in range(n)) / n
    negative = sum((a[i] @ b[j]) ** 2 for i in range(n) for j in range(n) if i != j)
    expected = -2 * positive + negative / (n * (n - 1))
    assert float(spectral_contrastive_loss(t(a), t(b))) == pytest.approx(
        expected, rel=1e-10
    )


def test_nt_xent_matches_explicit_softmax():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    z = np.concatenate([a, b])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n2, tau = 6, 0.5
    total = 0.0
    for i in range(n2):
        partner = (i + 3) % n2
        denominator = sum(math.exp(z[i] @ z[j] / tau) for j in range(n2) if j != i)
        total += -math.log(math.exp(z[i] @ z[partner] / tau) / denominator)
    assert float(nt_xent_loss(t(a), t(b), temperature=tau)) == pytest.approx(
        total / n2, rel=1e-10
    )


def test_multiview_loss_averages_all_unordered_pairs():
    views = [t([[1.0]]), t([[2.0]]), t([[4.0]])]

    def diff(a, b):
        return (b - a).sum()

    # pairs (0,1), (0,2), (1,2): 1 + 3 + 2 = 6, mean 2
    assert float(multiview_loss(diff, views)) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("name", "two_view"),
    [
        ("barlow_twins", barlow_twins_loss),
        ("vicreg", vicreg_loss),
        ("spectral", spectral_contrastive_loss),
        ("nt_xent", nt_xent_loss),
    ],
)
def test_registry_baselines_average_the_pairwise_loss(name, two_view):
    rng = np.random.default_rng(5)
    views = [t(rng.normal(size=(8, 4))) for _ in range(3)]
    loss = make_objective(name)(views)
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = np.mean([float(two_view(views[i], views[j])) for i, j in pairs])
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_registry_act_builds_criterion_with_requested_adversary():
    criterion = make_objective(
        resolve_objective(
            "act", {"alpha": 0.25, "adversary": "ema", "adversary_momentum": 0.8}
        )
    )
    assert isinstance(criterion, ACTCriterion)
    assert (criterion.alpha, criterion.adversary.mode, criterion.adversary.momentum) == (
        0.25,
        "ema",
        0.8,
    )
    assert set(OBJECTIVES) == {"act", "barlow_twins", "vicreg", "spectral", "nt_xent"}


# ------------------------------------------------ the two facts about where G comes from


def _pairs_of_views(seed, n=6, p=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    # Two "views": fixed perturbations of the same samples.
    return t(x + 0.3 * rng.normal(size=(n, p))), t(x + 0.3 * rng.normal(size=(n, p)))


def _grad(loss_fn, w):
    w = w.clone().requires_grad_()
    loss_fn(w).backward()
    return w.grad.detach()


def test_batch_adversary_gradient_is_half_the_squared_regulariser_gradient():
    x1, x2 = _pairs_of_views(0)
    w0 = t(np.random.default_rng(1).normal(size=(3, 2)))
    alpha = 0.7

    def act_batch(w):
        return ACTCriterion(alpha, Adversary("batch"))([x1 @ w, x2 @ w])

    def alignment(w):
        z1, z2 = scale_to_sqrt_dim(x1 @ w), scale_to_sqrt_dim(x2 @ w)
        return (z1 - z2).pow(2).sum(1).mean()

    def squared(w):
        z1, z2 = scale_to_sqrt_dim(x1 @ w), scale_to_sqrt_dim(x2 @ w)
        return alpha * (z1.T @ z2 / z1.shape[0] - torch.eye(2, dtype=z1.dtype)).pow(2).sum()

    regulariser_grad = _grad(act_batch, w0) - _grad(alignment, w0)
    assert torch.linalg.norm(regulariser_grad) > 1e-3
    torch.testing.assert_close(
        regulariser_grad, 0.5 * _grad(squared, w0), rtol=1e-5, atol=1e-6
    )


def _all_minibatches(n, m):
    return [list(c) for c in combinations(range(n), m)]


def test_fixed_independent_g_minibatch_gradients_average_to_population_gradient():
    # f(x) = x W on a population of 6 pairs of views; mini-batches of 3 (all 20 of them).
    x1, x2 = _pairs_of_views(2)
    w0 = t(np.random.default_rng(3).normal(size=(3, 2)))
    g = t([[0.3, -1.2], [0.5, 0.8]])  # fixed, independent of every batch
    alpha = 0.4
    population = _grad(lambda w: act_loss(x1 @ w, x2 @ w, g, alpha), w0)
    batches = _all_minibatches(6, 3)
    average = sum(
        _grad(lambda w, b=b: act_loss(x1[b] @ w, x2[b] @ w, g, alpha), w0) for b in batches
    ) / len(batches)
    torch.testing.assert_close(average, population, atol=1e-12, rtol=1e-10)


def test_batch_adversary_is_biased_for_the_population_objective():
    # Population objective: mean alignment + (alpha / 2) ||C_pop - I||^2, whose gradient is
    # what "batch" claims to follow. Its mini-batch gradients do not average to it; a
    # fixed G equal to the population's C_pop - I does (the unbiased choice at G's optimum).
    x1, x2 = _pairs_of_views(4)
    w0 = t(np.random.default_rng(5).normal(size=(3, 2)))
    alpha = 1.0

    def population_objective(w):
        z1, z2 = scale_to_sqrt_dim(x1 @ w), scale_to_sqrt_dim(x2 @ w)
        c = z1.T @ z2 / z1.shape[0]
        eye = torch.eye(2, dtype=z1.dtype)
        return (z1 - z2).pow(2).sum(1).mean() + alpha / 2 * (c - eye).pow(2).sum()

    target = _grad(population_objective, w0)
    batches = _all_minibatches(6, 3)

    def batch_grad(b):
        return _grad(
            lambda w: ACTCriterion(alpha, Adversary("batch"))([x1[b] @ w, x2[b] @ w]), w0
        )

    batch_average = sum(batch_grad(b) for b in batches) / len(batches)
    bias = torch.linalg.norm(batch_average - target) / torch.linalg.norm(target)
    assert bias > 0.01

    with torch.no_grad():
        z1, z2 = scale_to_sqrt_dim(x1 @ w0), scale_to_sqrt_dim(x2 @ w0)
        g_star = z1.T @ z2 / 6 - torch.eye(2, dtype=z1.dtype)
    fixed_average = sum(
        _grad(lambda w, b=b: act_loss(x1[b] @ w, x2[b] @ w, g_star, alpha), w0)
        for b in batches
    ) / len(batches)
    torch.testing.assert_close(fixed_average, target, atol=1e-12, rtol=1e-10)


# ----------------------------- "batch" against a hand gradient, and the authors' code


def _on_sqrt_d_sphere(seed, n, d, k):
    """``k`` leaf views whose rows already have norm sqrt(d) (the rescaling is a no-op)."""
    rng = np.random.default_rng(seed)
    views = [rng.normal(size=(n, d)) for _ in range(k)]
    return [t(math.sqrt(d) * v / np.linalg.norm(v, axis=1, keepdims=True)) for v in views]


def _leaf_grads(loss_fn, views):
    views = [v.clone().requires_grad_() for v in views]
    loss_fn(views).backward()
    return [v.grad.detach() for v in views]


def _tangent(grad, z):
    # At a row of norm sqrt(d), sqrt(d) * z / ||z|| has Jacobian I - u u^T (u = z / ||z||):
    # a gradient reaches the raw row with its radial part removed.
    u = z / z.norm(dim=1, keepdim=True)
    return grad - (grad * u).sum(dim=1, keepdim=True) * u


def test_batch_adversary_gradient_is_half_the_squared_gradient_by_hand():
    n, d, alpha = 5, 3, 0.7
    z1, z2 = _on_sqrt_d_sphere(6, n, d, 2)
    g1, g2 = _leaf_grads(ACTCriterion(alpha, Adversary("batch")), [z1, z2])
    # By hand, with C = z1^T z2 / n and E = C - I:
    #   mean_i ||z1_i - z2_i||^2   has gradients  2/n (z1 - z2)      and  -2/n (z1 - z2);
    #   alpha ||C - I||_F^2        has gradients  2 alpha/n z2 E^T   and  2 alpha/n z1 E.
    e = z1.T @ z2 / n - torch.eye(d, dtype=z1.dtype)
    squared_1, squared_2 = 2 * alpha / n * z2 @ e.T, 2 * alpha / n * z1 @ e
    expected_1 = _tangent(2 / n * (z1 - z2) + 0.5 * squared_1, z1)
    expected_2 = _tangent(-2 / n * (z1 - z2) + 0.5 * squared_2, z2)
    assert torch.linalg.norm(_tangent(squared_1, z1)) > 0.1  # the regulariser counts
    torch.testing.assert_close(g1, expected_1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g2, expected_2, rtol=1e-5, atol=1e-5)


def _authors_two_view_loss(views, lam):
    # The authors' code with two views: G = C_hat - I of the pair itself, not detached.
    z1, z2 = (scale_to_sqrt_dim(v) for v in views)
    c = z1.T @ z2 / z1.shape[0]
    g = c - torch.eye(c.shape[0], dtype=c.dtype)
    return (z1 - z2).pow(2).sum(dim=1).mean() + lam * (g * g).sum()


def test_authors_two_view_gradient_is_batch_mode_at_twice_the_weight():
    alpha = 0.6
    views = _on_sqrt_d_sphere(7, 6, 3, 2)
    ours = _leaf_grads(ACTCriterion(alpha, Adversary("batch")), views)
    alignment = _leaf_grads(lambda v: _authors_two_view_loss(v, 0.0), views)
    same = _leaf_grads(lambda v: _authors_two_view_loss(v, alpha / 2), views)
    double = _leaf_grads(lambda v: _authors_two_view_loss(v, alpha), views)
    for g_ours, g_align, g_same, g_double in zip(ours, alignment, same, double):
        torch.testing.assert_close(g_ours, g_same, rtol=1e-5, atol=1e-5)
        # At lambda = alpha their regulariser's gradient is twice that of "batch".
        torch.testing.assert_close(
            g_double - g_align, 2 * (g_ours - g_align), rtol=1e-4, atol=1e-5
        )


def test_batch_adversary_with_three_views_halves_the_gradient_for_the_mean_c():
    alpha, n, d = 0.5, 6, 3
    views = _on_sqrt_d_sphere(8, n, d, 3)
    pairs = [(0, 1), (0, 2), (1, 2)]
    eye = torch.eye(d, dtype=torch.float64)

    def alignment(vs):
        z = [scale_to_sqrt_dim(v) for v in vs]
        return sum((z[i] - z[j]).pow(2).sum(dim=1).mean() for i, j in pairs) / 3

    def correlations(vs):
        z = [scale_to_sqrt_dim(v) for v in vs]
        return [z[i].T @ z[j] / n for i, j in pairs]

    def squared_of_mean(vs):
        return alpha * (sum(correlations(vs)) / 3 - eye).pow(2).sum()

    def mean_of_squared(vs):
        return alpha * sum((c - eye).pow(2).sum() for c in correlations(vs)) / 3

    ours = _leaf_grads(ACTCriterion(alpha, Adversary("batch")), views)
    align = _leaf_grads(alignment, views)
    of_mean = _leaf_grads(squared_of_mean, views)
    of_pairs = _leaf_grads(mean_of_squared, views)
    for g, a, m, p in zip(ours, align, of_mean, of_pairs):
        torch.testing.assert_close(g - a, 0.5 * m, rtol=1e-4, atol=1e-5)
        assert torch.linalg.norm(g - a - 0.5 * p) > 0.01  # not the pairs' own squares


# ------------------------------------------- objective modules and their own parameters

#: A small, fast encoder for fits in these tests.
SMALL = {"hidden_layer_sizes": (16,), "n_components": 8, "projection_dim": 8}


@pytest.fixture(scope="module")
def wine():
    return load_wine().data[:90]


def test_barlow_twins_module_matches_numpy_with_its_own_lambd_and_eps():
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    lambd, eps = 0.1, 0.5  # a large eps, so that it shows in the value

    def standardized(z):
        return (z - z.mean(0)) / (z.std(0) + eps)

    c = standardized(a).T @ standardized(b) / 6
    on = sum((1 - c[i, i]) ** 2 for i in range(3))
    off = sum(c[i, j] ** 2 for i in range(3) for j in range(3) if i != j)
    loss = BarlowTwinsLoss(lambd=lambd, eps=eps)([t(a), t(b)])
    assert float(loss) == pytest.approx(on + lambd * off, rel=1e-5)
    assert float(loss) != pytest.approx(float(BarlowTwinsLoss()([t(a), t(b)])), rel=1e-2)


def test_vicreg_module_matches_numpy_with_its_own_weights():
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=(5, 3)), 0.3 * rng.normal(size=(5, 3))
    sim, var, cov, eps = 2.0, 3.0, 0.5, 1e-3

    def variance(z):
        return np.mean(np.maximum(0, 1 - np.sqrt(z.var(axis=0, ddof=1) + eps)))

    def covariance(z):
        m = np.cov(z, rowvar=False)
        return sum(m[i, j] ** 2 for i in range(3) for j in range(3) if i != j) / 3

    expected = (
        sim * np.mean((a - b) ** 2)
        + var * (variance(a) + variance(b))
        + cov * (covariance(a) + covariance(b))
    )
    loss = VICRegLoss(sim_weight=sim, var_weight=var, cov_weight=cov, eps=eps)
    assert float(loss([t(a), t(b)])) == pytest.approx(expected, rel=1e-6)


def test_spectral_module_projects_onto_the_ball_of_radius_sqrt_mu():
    # The official code: rows longer than sqrt(mu) are rescaled to it, the loss / mu.
    rng = np.random.default_rng(13)
    a, b = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    mu, n = 1.0, 4
    norms = np.linalg.norm(np.concatenate([a, b]), axis=1)
    assert (norms < 1).any() and (norms > 1).any()  # both branches are exercised

    def project(z):
        norm = np.linalg.norm(z, axis=1, keepdims=True)
        return np.where(norm < math.sqrt(mu), z, math.sqrt(mu) * z / norm)

    pa, pb = project(a), project(b)
    positive = sum(pa[i] @ pb[i] for i in range(n)) / n
    negative = sum((pa[i] @ pb[j]) ** 2 for i in range(n) for j in range(n) if i != j)
    expected = (-2 * positive + negative / (n * (n - 1))) / mu
    loss = SpectralContrastiveLoss(mu=mu)([t(a), t(b)])
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_spectral_module_without_mu_is_the_unprojected_loss():
    rng = np.random.default_rng(14)
    a, b = t(rng.normal(size=(4, 2))), t(rng.normal(size=(4, 2)))
    unbounded = float(spectral_contrastive_loss(a, b))
    assert float(SpectralContrastiveLoss()([a, b])) == pytest.approx(unbounded, rel=1e-6)
    # A ball wider than every row projects nothing: the loss is only divided by mu.
    assert float(SpectralContrastiveLoss(mu=100.0)([a, b])) == pytest.approx(
        unbounded / 100, rel=1e-6
    )


def test_nt_xent_module_uses_its_temperature():
    rng = np.random.default_rng(15)
    a, b = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    z = np.concatenate([a, b])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    tau = 0.2
    total = 0.0
    for i in range(6):
        others = sum(math.exp(z[i] @ z[j] / tau) for j in range(6) if j != i)
        total += -math.log(math.exp(z[i] @ z[(i + 3) % 6] / tau) / others)
    loss = NTXentLoss(temperature=tau)([t(a), t(b)])
    assert float(loss) == pytest.approx(total / 6, rel=1e-6)


def test_act_module_matches_the_hand_computation():
    # "batch": G = C_hat - I of the batch, so the value is alignment + alpha ||C - I||^2.
    loss = ACTLoss(alpha=0.1, adversary="batch")([t(Z1), t(Z2)])
    assert float(loss) == pytest.approx(ALIGNMENT + 0.1 * SQUARED, **F32)


def test_act_module_carries_g_from_call_to_call():
    objective = ACTLoss(alpha=0.5, adversary="previous")
    objective([t(Z1), t(Z2)])
    # Second call, identical views: alignment 0, G = the first call's C_hat - I.
    c2 = np.array([[2.04, 0.28], [0.28, 3.96]]) / 3  # (1/3) sum_i z2_i z2_i^T
    expected = 0.5 * np.sum((c2 - np.eye(2)) * (np.array(C_HAT) - np.eye(2)))
    assert float(objective([t(Z2), t(Z2)])) == pytest.approx(expected, **F32)
    # A new adversary mode starts a new G: "batch" uses this call's C_hat.
    objective.set_params(adversary="batch")
    batch = 0.5 * np.sum((c2 - np.eye(2)) ** 2)
    assert float(objective([t(Z2), t(Z2)])) == pytest.approx(batch, **F32)


@pytest.mark.parametrize(
    ("objective", "two_view"),
    [
        (BarlowTwinsLoss(lambd=0.05), lambda a, b: barlow_twins_loss(a, b, lambd=0.05)),
        (VICRegLoss(var_weight=5.0), lambda a, b: vicreg_loss(a, b, var_weight=5.0)),
        (SpectralContrastiveLoss(), spectral_contrastive_loss),
        (NTXentLoss(temperature=0.1), lambda a, b: nt_xent_loss(a, b, 0.1)),
    ],
)
def test_modules_average_their_pair_loss_over_all_pairs_of_views(objective, two_view):
    rng = np.random.default_rng(16)
    views = [t(rng.normal(size=(8, 4))) for _ in range(3)]
    expected = np.mean(
        [float(two_view(views[i], views[j])) for i, j in [(0, 1), (0, 2), (1, 2)]]
    )
    assert float(objective(views)) == pytest.approx(expected, rel=1e-5)


ALL_MODULES = [
    ACTLoss(alpha=0.1, adversary="previous", momentum=0.5),
    BarlowTwinsLoss(lambd=0.02, eps=1e-4),
    VICRegLoss(sim_weight=10.0, var_weight=10.0, cov_weight=2.0, eps=1e-3),
    SpectralContrastiveLoss(mu=4.0),
    NTXentLoss(temperature=0.1),
]


@pytest.mark.parametrize("objective", ALL_MODULES, ids=lambda o: type(o).__name__)
def test_get_params_set_params_and_clone(objective):
    params = objective.get_params()
    assert type(objective)(**params).get_params() == params
    copy = clone(objective)
    assert copy is not objective and type(copy) is type(objective)
    assert copy.get_params() == params
    name = next(iter(params))
    assert copy.set_params(**{name: params[name] * 2}) is copy
    assert copy.get_params()[name] == params[name] * 2
    assert objective.get_params() == params  # the original is untouched
    with pytest.raises(
        ValueError, match=f"invalid parameter 'nope' for {type(objective).__name__}"
    ):
        objective.set_params(nope=1)
    assert repr(objective).startswith(f"{type(objective).__name__}({name}=")


def test_registry_names_the_classes_and_act_defaults_are_the_encoders():
    assert {name: cls.name for name, cls in OBJECTIVES.items()} == {
        name: name for name in ("act", "barlow_twins", "vicreg", "spectral", "nt_xent")
    }
    assert all(issubclass(cls, Objective) for cls in OBJECTIVES.values())
    encoder = ACTEncoder().get_params()
    assert ACTLoss().get_params() == {
        "alpha": encoder["alpha"],
        "adversary": encoder["adversary"],
        "momentum": encoder["adversary_momentum"],
    }


def test_encoder_exposes_the_objectives_parameters_as_nested_ones():
    enc = ACTEncoder(objective=BarlowTwinsLoss(lambd=0.02))
    assert enc.get_params()["objective__lambd"] == 0.02
    enc.set_params(objective__lambd=0.1)
    assert enc.objective.lambd == 0.1
    copy = clone(enc)
    assert copy.objective is not enc.objective
    assert copy.objective.get_params() == {"lambd": 0.1, "eps": 1e-5}
    assert "objective=BarlowTwinsLoss(lambd=0.1, eps=1e-05)" in repr(enc)


def test_make_objective_copies_the_instance_and_validates_it():
    objective = NTXentLoss(temperature=0.2)
    criterion = make_objective(objective)
    assert criterion is not objective and criterion.temperature == 0.2
    act = make_objective(ACTLoss(alpha=0.2, adversary="ema", momentum=0.5))
    assert isinstance(act, ACTCriterion)
    assert (act.alpha, act.adversary.mode, act.adversary.momentum) == (0.2, "ema", 0.5)
    held_out = make_objective(ACTLoss(adversary="ema"), held_out=True)
    assert held_out.adversary.mode == "batch"
    # The baselines carry neither an adversary nor a reduce hook (distributed.wrap
    # looks for one to tell ACT apart).
    for name in ("barlow_twins", "vicreg", "spectral", "nt_xent"):
        built = make_objective(name)
        assert not hasattr(built, "adversary") and not hasattr(built, "reduce")
    with pytest.raises(
        InvalidParameterError, match="'temperature' parameter of NTXentLoss"
    ):
        make_objective(NTXentLoss(temperature=0.0))
    with pytest.raises(ValueError, match="objective must be one of"):
        make_objective("simclr")
    with pytest.raises(TypeError, match=r"BarlowTwinsLoss\(lambd=0.01\)"):
        make_objective(3)  # type: ignore[arg-type]  # on purpose: the TypeError is tested


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        (
            NTXentLoss(temperature=0),
            r"'temperature' parameter of NTXentLoss must be a float in the range \(0.0,",
        ),
        (
            BarlowTwinsLoss(lambd=-1),
            r"'lambd' parameter of BarlowTwinsLoss must be a float in the range \[0.0,",
        ),
        (BarlowTwinsLoss(eps=0), "'eps' parameter of BarlowTwinsLoss"),
        (VICRegLoss(cov_weight=-1), "'cov_weight' parameter of VICRegLoss"),
        (
            SpectralContrastiveLoss(mu=0),
            r"'mu' parameter of SpectralContrastiveLoss must be .* or None",
        ),
        (
            ACTLoss(adversary="future"),
            "'adversary' parameter of ACTLoss must be a str among",
        ),
        (ACTLoss(momentum=1.0), "'momentum' parameter of ACTLoss"),
        ("simclr", "'objective' parameter of ACTEncoder must be a str among"),
        (
            NTXentLoss,
            "'objective' parameter of ACTEncoder .* instance of 'skact.objectives.Objec",
        ),
    ],
)
def test_fit_rejects_bad_objectives_naming_the_parameter(wine, objective, message):
    with pytest.raises(ValueError, match=message):
        ACTEncoder(objective=objective, max_iter=1, **SMALL).fit(wine)


def test_resolve_objective_takes_each_act_setting_from_one_place():
    params = ACTEncoder(alpha=0.2, adversary="batch", adversary_momentum=0.5).get_params()
    assert resolve_objective("act", params).get_params() == {
        "alpha": 0.2,
        "adversary": "batch",
        "momentum": 0.5,
    }
    # The estimator's defaults are ACTLoss's: the name alone is ACTLoss().
    default = resolve_objective("act", ACTEncoder().get_params())
    assert default.get_params() == ACTLoss().get_params()
    instance = ACTLoss(alpha=0.4)
    assert resolve_objective(instance, ACTEncoder().get_params()) is instance
    assert type(resolve_objective("vicreg", ACTEncoder().get_params())) is VICRegLoss
    for cls in OBJECTIVES.values():  # the estimator's default is the objective's
        for ours, theirs in cls.estimator_params.items():
            assert ACTEncoder().get_params()[ours] == cls().get_params()[theirs]


@pytest.mark.parametrize("objective", ["vicreg", "nt_xent", BarlowTwinsLoss()])
@pytest.mark.parametrize(
    ("name", "value"), [("alpha", 0.5), ("adversary", "batch"), ("adversary_momentum", 0.5)]
)
def test_fit_refuses_act_settings_another_objective_would_ignore(
    wine, objective, name, value
):
    enc = ACTEncoder(objective=objective, max_iter=1, **SMALL).set_params(**{name: value})
    message = (
        rf"{name}={value!r} is set on ACTEncoder, but it configures objective='act' "
        r"only and objective=.* would ignore it: leave"
    )
    with pytest.raises(ValueError, match=message):
        enc.fit(wine)
    assert not hasattr(enc, "encoder_")  # refused before training
    with pytest.raises(ValueError, match=message):  # the factory behind it
        resolve_objective(objective, enc.get_params())


def test_make_objective_takes_no_objective_specific_keywords():
    import inspect

    keywords = set(inspect.signature(make_objective).parameters) - {"objective"}
    assert keywords == {"held_out"}
    with pytest.raises(TypeError, match="alpha"):
        make_objective("act", alpha=0.1)  # type: ignore[call-arg]  # on purpose
    # held_out is every objective's: the baselines hold no state and ignore it.
    views = [torch.randn(8, 4, generator=torch.Generator().manual_seed(i)) for i in (0, 1)]
    vicreg = make_objective("vicreg", held_out=True)
    assert float(vicreg(views)) == float(make_objective("vicreg")(views))


def test_fit_refuses_act_parameters_set_twice(wine):
    enc = ACTEncoder(objective=ACTLoss(alpha=0.03), alpha=0.1, max_iter=1, **SMALL)
    with pytest.raises(ValueError, match=r"ACTLoss\(alpha=0.1\), or objective__alpha"):
        enc.fit(wine)
    enc = ACTEncoder(objective=ACTLoss(), adversary="batch", max_iter=1, **SMALL)
    with pytest.raises(ValueError, match="objective__adversary"):
        enc.fit(wine)


#: The criteria before objectives had parameters: the functions with their defaults.
FUNCTIONAL = {
    "barlow_twins": barlow_twins_loss,
    "vicreg": vicreg_loss,
    "spectral": spectral_contrastive_loss,
    "nt_xent": nt_xent_loss,
}


@pytest.mark.parametrize("name", ["act", *FUNCTIONAL])
def test_names_train_bit_identically_to_the_functional_losses(wine, name, monkeypatch):
    params = {**SMALL, "max_iter": 2, "random_state": 0}
    if name == "act":  # ACT's settings apply to objective="act" only
        params["adversary"] = "previous"
    by_name = ACTEncoder(objective=name, **params).fit(wine).transform(wine)
    by_instance = ACTEncoder(objective=OBJECTIVES[name](), **params)
    if name == "act":  # the instance carries the ACT parameters itself
        by_instance.set_params(adversary="ema", objective__adversary="previous")
    by_instance = by_instance.fit(wine).transform(wine)

    calls = []

    def functional(objective, *, held_out=False):
        calls.append(objective)
        if isinstance(objective, ACTLoss):
            mode = "batch" if held_out else objective.adversary
            return ACTCriterion(objective.alpha, Adversary(mode, objective.momentum))
        fn = FUNCTIONAL[objective.name]
        return lambda views: multiview_loss(fn, [z.float() for z in views])

    monkeypatch.setattr(skact._encoder, "make_objective", functional)
    reference = ACTEncoder(objective=name, **params).fit(wine).transform(wine)
    assert calls  # the estimator builds its criterion through the factory
    np.testing.assert_array_equal(by_name, reference)
    np.testing.assert_array_equal(by_instance, reference)


def test_an_objectives_parameter_reaches_training_and_the_instance_is_untouched(wine):
    params = {**SMALL, "max_iter": 2, "random_state": 0}
    objective = ACTLoss(adversary="ema")
    ACTEncoder(objective=objective, **params).fit(wine)
    assert objective._running is None  # training used a copy
    low = ACTEncoder(objective=NTXentLoss(temperature=0.05), **params).fit(wine)
    high = ACTEncoder(objective=NTXentLoss(temperature=1.0), **params).fit(wine)
    assert not np.allclose(low.transform(wine), high.transform(wine))


def test_grid_search_over_the_objectives_temperature(wine):
    y = load_wine().target[:90]
    pipe = make_pipeline(
        ACTEncoder(objective=NTXentLoss(), max_iter=1, random_state=0, **SMALL),
        LogisticRegression(max_iter=200),
    )
    search = GridSearchCV(
        pipe, {"actencoder__objective__temperature": [0.1, 1.0]}, cv=2
    ).fit(wine, y)
    assert list(search.cv_results_["param_actencoder__objective__temperature"]) == [
        0.1,
        1.0,
    ]
    best = search.best_estimator_.named_steps["actencoder"].objective
    assert best.temperature == search.best_params_["actencoder__objective__temperature"]
    assert pipe.named_steps["actencoder"].objective.temperature == 0.5


@pytest.mark.parametrize(
    "objective",
    [
        VICRegLoss(cov_weight=0.5),
        ACTLoss(alpha=0.1, adversary="previous"),
        SpectralContrastiveLoss(),
    ],
    ids=lambda o: type(o).__name__,
)
def test_save_and_load_rebuild_the_objective(wine, tmp_path, objective):
    enc = ACTEncoder(objective=objective, max_iter=1, random_state=0, **SMALL).fit(wine)
    enc.save(tmp_path / "model.skact")
    loaded = skact.load(tmp_path / "model.skact")
    assert type(loaded.objective) is type(objective)
    assert loaded.objective.get_params() == objective.get_params()
    np.testing.assert_array_equal(loaded.transform(wine), enc.transform(wine))


def test_save_refuses_an_objective_it_cannot_rebuild(wine, tmp_path):
    class Halved(NTXentLoss):
        pass

    enc = ACTEncoder(objective=Halved(), max_iter=1, random_state=0, **SMALL).fit(wine)
    with pytest.raises(TypeError, match="pickle the estimator instead"):
        enc.save(tmp_path / "model.skact")


def test_load_leaves_an_unknown_saved_objective_to_validation():
    from skact import _persistence

    saved = {"__objective__": {"name": "simclr", "params": {}}}
    assert _persistence._params_from_json({"objective": saved})["objective"] == saved
    bad = {"__objective__": {"name": "nt_xent", "params": {"temperature": -1.0}}}
    assert _persistence._params_from_json({"objective": bad})["objective"] == bad
    good = {"__objective__": {"name": "nt_xent", "params": {"temperature": 0.2}}}
    rebuilt = _persistence._params_from_json({"objective": good})["objective"]
    assert isinstance(rebuilt, NTXentLoss) and rebuilt.temperature == 0.2
