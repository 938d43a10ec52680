"""Self-supervised objectives: ACT and the baselines it is compared with.

Every objective is a pure function of two batches of embeddings ``z1`` and ``z2`` of
shape ``(n, d)`` (row ``i`` of each is a view of the same sample) and returns a scalar
tensor. No data loading and no training loop lives here, so each formula can be checked
against a hand computation.

ACT (Adversarial Contrastive Training) is a minimax problem: the regulariser
``||E[f(x1) f(x2)^T] - I||_F^2`` is replaced by ``<E[f(x1) f(x2)^T] - I, G>_F`` with an
adversary ``G`` that is held fixed during the encoder step. :class:`Adversary` supplies
``G``; see its docstring for where ``G`` can come from and why it matters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "OBJECTIVES",
    "Adversary",
    "act_loss",
    "barlow_twins_loss",
    "cross_correlation",
    "multiview_loss",
    "nt_xent_loss",
    "scale_to_sqrt_dim",
    "spectral_contrastive_loss",
    "vicreg_loss",
]


def scale_to_sqrt_dim(z: Tensor) -> Tensor:
    """Rescale each row of ``z`` to Euclidean norm ``sqrt(d)``.

    Parameters
    ----------
    z : Tensor of shape (n, d)
        Embeddings.

    Returns
    -------
    Tensor of shape (n, d)
        ``sqrt(d) * z / ||z||`` row by row, as in the ACT authors' code.
    """
    return math.sqrt(z.shape[1]) * F.normalize(z, dim=1)


def cross_correlation(z1: Tensor, z2: Tensor) -> Tensor:
    """Empirical cross-correlation ``C_hat = z1^T z2 / n`` of two views.

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Embeddings of two views of the same ``n`` samples.

    Returns
    -------
    Tensor of shape (d, d)
    """
    return z1.T @ z2 / z1.shape[0]


def act_loss(z1: Tensor, z2: Tensor, adversary: Tensor, alpha: float) -> Tensor:
    """ACT loss of two views for a fixed adversary ``G``.

    .. math::

        L = \\frac{1}{n}\\sum_i \\|z_{1i} - z_{2i}\\|^2
            + \\alpha \\, \\langle \\hat C - I, G \\rangle_F,
        \\qquad \\hat C = \\frac{1}{n} z_1^\\top z_2,

    where the rows of ``z1`` and ``z2`` are first rescaled to norm ``sqrt(d)``. ``G``
    receives no gradient. For a ``G`` independent of the batch the mini-batch loss is an
    unbiased estimate of the population loss, and so is its gradient.

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Raw embeddings of two views (rescaled inside).
    adversary : Tensor of shape (d, d)
        The dual variable ``G``.
    alpha : float
        Weight of the regulariser (the paper's lambda).

    Returns
    -------
    Tensor
        Scalar loss.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> float(act_loss(z, z, torch.zeros(2, 2), alpha=1.0))
    0.0
    """
    z1 = scale_to_sqrt_dim(z1)
    z2 = scale_to_sqrt_dim(z2)
    alignment = (z1 - z2).pow(2).sum(dim=1).mean()
    eye = torch.eye(z1.shape[1], device=z1.device, dtype=z1.dtype)
    dual = ((cross_correlation(z1, z2) - eye) * adversary.detach()).sum()
    return alignment + alpha * dual


def barlow_twins_loss(z1: Tensor, z2: Tensor, lambd: float = 5e-3) -> Tensor:
    """Barlow Twins loss (Zbontar et al., 2021).

    Each feature is standardised over the batch (biased variance, as BatchNorm); with
    ``c`` their cross-correlation,
    ``L = sum_i (1 - c_ii)^2 + lambd * sum_{i != j} c_ij^2``.

    Conventions where implementations differ: skact divides by ``std + 1e-5`` (``eps``
    added to the standard deviation); the official code standardises with
    ``BatchNorm1d(affine=False)``, which divides by ``sqrt(var + 1e-5)`` (``eps`` under
    the square root), and lightly by the unbiased standard deviation, without ``eps``.
    The two ``eps`` conventions differ only for features whose standard deviation is
    near ``sqrt(1e-5)``, about 0.003, or below. ``lambd`` defaults to the paper's 5e-3
    (the official code's is 0.0051).

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Embeddings of two views.
    lambd : float, default=5e-3
        Weight of the off-diagonal (redundancy reduction) term.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    n = z1.shape[0]
    c = _standardize(z1).T @ _standardize(z2) / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambd * off_diag


def vicreg_loss(
    z1: Tensor,
    z2: Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    eps: float = 1e-4,
) -> Tensor:
    """VICReg loss (Bardes et al., 2022): invariance, variance and covariance terms.

    ``L = sim_weight * mean ||z1 - z2||^2 / d`` (the mean squared error)
    ``+ var_weight * (v(z1) + v(z2))`` with ``v(z) = mean_j relu(1 - sqrt(var_j + eps))``
    ``+ cov_weight * (c(z1) + c(z2))`` with ``c(z)`` the sum of squared off-diagonal
    covariances divided by ``d`` (variances and covariances unbiased, over ``n - 1``).

    The variance term follows the paper's formula, ``25 * (v(z1) + v(z2))``. The
    official code and lightly halve it, ``25 * (v(z1) + v(z2)) / 2``: their loss is
    this one with ``var_weight=12.5``.

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Embeddings of two views.
    sim_weight, var_weight, cov_weight : float
        Weights of the three terms (the paper's 25, 25, 1).
    eps : float, default=1e-4
        Added to the variance before the square root.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    n, d = z1.shape
    invariance = F.mse_loss(z1, z2)

    def variance(z: Tensor) -> Tensor:
        return F.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean()

    def covariance(z: Tensor) -> Tensor:
        zc = z - z.mean(dim=0)
        cov = zc.T @ zc / (n - 1)
        return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d

    return (
        sim_weight * invariance
        + var_weight * (variance(z1) + variance(z2))
        + cov_weight * (covariance(z1) + covariance(z2))
    )


def spectral_contrastive_loss(z1: Tensor, z2: Tensor) -> Tensor:
    """Spectral contrastive loss (HaoChen et al., 2021).

    ``L = -2/n sum_i z1_i . z2_i + 1/(n(n-1)) sum_{i != j} (z1_i . z2_j)^2``,
    on the embeddings as given. The official code first projects each row onto the
    ball of radius ``sqrt(mu)`` (a row longer than ``sqrt(mu)`` is rescaled to that
    norm; ``mu = 1`` by default) and divides the loss by ``mu``; skact does neither, so
    its loss is that one with ``mu`` infinite, and the scale of the embeddings is left
    to the loss's own quadratic term.

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Embeddings of two views.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    n = z1.shape[0]
    sim = z1 @ z2.T
    positive = torch.diagonal(sim).mean()
    off = sim.pow(2).sum() - torch.diagonal(sim).pow(2).sum()
    return -2 * positive + off / (n * (n - 1))


def nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent loss of SimCLR (Chen et al., 2020).

    Cosine similarities over the ``2n`` embeddings divided by ``temperature``; each
    embedding must pick out its partner view among the other ``2n - 1`` by softmax
    cross-entropy, averaged over all ``2n`` anchors.

    Parameters
    ----------
    z1, z2 : Tensor of shape (n, d)
        Embeddings of two views.
    temperature : float, default=0.5
        Softmax temperature.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(
        torch.eye(2 * n, dtype=torch.bool, device=z.device), -torch.inf
    )
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def multiview_loss(
    loss: Callable[[Tensor, Tensor], Tensor], views: Sequence[Tensor]
) -> Tensor:
    """Average a two-view loss over all unordered pairs of views.

    Parameters
    ----------
    loss : callable
        ``loss(z1, z2) -> scalar``.
    views : sequence of Tensor of shape (n, d)
        At least two views.

    Returns
    -------
    Tensor
        Mean of ``loss`` over the ``k (k - 1) / 2`` pairs.
    """
    pairs = list(combinations(range(len(views)), 2))
    return torch.stack([loss(views[i], views[j]) for i, j in pairs]).mean()


def _standardize(z: Tensor, eps: float = 1e-5) -> Tensor:
    # Biased standard deviation, as BatchNorm in the Barlow Twins code: with the unbiased
    # one identical views give c_ii = (n - 1) / n and the loss cannot reach zero.
    return (z - z.mean(dim=0)) / (z.std(dim=0, correction=0) + eps)


class Adversary:
    """The ACT dual variable ``G`` and where it comes from.

    At its optimum ``G = C - I`` with ``C = E[f(x1) f(x2)^T]``. Three estimates:

    ``"batch"``
        ``C_hat - I`` of the current mini-batch, detached. The encoder gradient is
        then exactly half the gradient of the *biased* squared estimate
        ``alpha * ||C_hat - I||_F^2``, where with more than two views ``C_hat`` is the
        mean of the pairs' ``C_hat`` (see :class:`ACTCriterion`). This is not what the
        authors' code does: there the first pair's ``G`` is its own ``C_hat - I``, not
        detached, so with two views their gradient is the full gradient of
        ``lambda * ||C_hat - I||_F^2``, twice this one at ``lambda = alpha`` (equal at
        ``lambda = alpha / 2``); with more views each later pair takes its ``G`` from
        the pair before it. Both square a batch estimate, so both are biased.
    ``"previous"``
        ``C_hat - I`` of the previous step: independent of the current batch, so the
        gradient is unbiased for the ``G`` in use.
    ``"ema"``
        An exponential moving average of ``C_hat - I`` over past steps (``momentum`` is
        the weight of the past), also independent of the current batch and less noisy.

    On the first step ``"previous"`` and ``"ema"`` have no past and use the current batch.

    Parameters
    ----------
    mode : {"batch", "previous", "ema"}
        Source of ``G``.
    momentum : float, default=0.9
        Weight of the past in the ``"ema"`` average.

    Attributes
    ----------
    state : Tensor of shape (d, d) or None
        The stored estimate of ``C - I`` (None before the first update).

    Examples
    --------
    >>> import torch
    >>> adv = Adversary("previous")
    >>> c1, c2 = torch.eye(2) * 2, torch.eye(2) * 3
    >>> adv.get(c1).tolist()  # first step: current batch
    [[1.0, 0.0], [0.0, 1.0]]
    >>> adv.update(c1)
    >>> adv.get(c2).tolist()  # then: the previous step's C - I
    [[1.0, 0.0], [0.0, 1.0]]
    """

    modes = ("batch", "previous", "ema")

    def __init__(self, mode: str = "ema", momentum: float = 0.9) -> None:
        if mode not in self.modes:
            raise ValueError(f"adversary must be one of {self.modes}, got {mode!r}")
        self.mode = mode
        self.momentum = momentum
        self.state: Tensor | None = None

    def get(self, correlation: Tensor) -> Tensor:
        """Return ``G`` for a step whose batch cross-correlation is ``correlation``.

        Parameters
        ----------
        correlation : Tensor of shape (d, d)
            ``C_hat`` of the current batch (used on the first step and in "batch" mode).

        Returns
        -------
        Tensor of shape (d, d)
            Detached ``G``.
        """
        if self.mode == "batch" or self.state is None:
            return _minus_identity(correlation.detach())
        return self.state

    def update(self, correlation: Tensor) -> None:
        """Record the current batch's ``C_hat`` after the encoder step.

        A non-finite ``C_hat`` (a diverging step) is not recorded: ``G`` stays as it
        was, so the step can be undone and training continued.

        Parameters
        ----------
        correlation : Tensor of shape (d, d)
            ``C_hat`` of the batch just used.
        """
        if self.mode == "batch":
            return
        target = _minus_identity(correlation.detach().float())
        if self.state is None:
            # Once per model: a host sync is affordable here, not at every step.
            if bool(torch.isfinite(target).all()):
                self.state = target
            return
        if self.mode == "ema":
            target = self.momentum * self.state + (1 - self.momentum) * target
        # torch.where keeps the step free of a host sync (no Python branch on a value).
        self.state = torch.where(torch.isfinite(target).all(), target, self.state)

    def state_dict(self) -> dict[str, object]:
        """Return the adversary's state (for checkpoints).

        Returns
        -------
        dict
            ``mode``, ``momentum`` and ``state``.
        """
        return {"mode": self.mode, "momentum": self.momentum, "state": self.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the running estimate of a state returned by :meth:`state_dict`.

        ``mode`` and ``momentum`` stay those this adversary was built with (the
        parameters in force now, for ``warm_start``). A non-finite estimate (saved
        after a diverging step by an older skact) is dropped: the next step starts
        from its own batch, as the first step does.

        Parameters
        ----------
        state : dict
            As returned by :meth:`state_dict`.
        """
        estimate = state["state"]
        if isinstance(estimate, Tensor) and not bool(torch.isfinite(estimate).all()):
            estimate = None
        self.state = estimate


def _minus_identity(c: Tensor) -> Tensor:
    return c - torch.eye(c.shape[0], device=c.device, dtype=c.dtype)


class ACTCriterion:
    """ACT over any number of views with a persistent :class:`Adversary`.

    For ``k`` views the loss is averaged over the ``k (k - 1) / 2`` pairs; ``G`` is shared
    by the pairs and its batch estimate is the mean of the pairs' ``C_hat``. So with
    ``adversary="batch"`` the regulariser's gradient is half the gradient of
    ``alpha * ||mean_p C_hat_p - I||_F^2`` (the squared norm of the mean, not the mean of
    the pairs' squared norms). The authors' code pairs differently: each pair's ``G``
    comes from the pair before it in order, the first pair's from itself, undetached.

    Parameters
    ----------
    alpha : float
        Weight of the regulariser.
    adversary : Adversary
        Source of ``G``.
    reduce : callable or None, default=None
        When the batch is split over several processes, a function that sums a tensor
        over all of them and passes gradients back through the sum (for example
        :func:`skact.distributed.all_reduce_sum`, or :func:`skact.distributed.shared_sum`,
        which skips the collective on the way back because the loss is the same on every
        process). The alignment term and ``C_hat`` are
        then those of the global batch, so every process returns the same, global loss.
        None: the batch given is the whole batch.
    """

    def __init__(
        self,
        alpha: float,
        adversary: Adversary,
        reduce: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.alpha = alpha
        self.adversary = adversary
        self.reduce = reduce

    def __call__(self, views: Sequence[Tensor]) -> Tensor:
        # The same value as multiview_loss over act_loss, computed once per pair: each
        # pair's C_hat serves both G's estimate and the loss, the views are rescaled
        # once, and <C_hat - I, G> = <C_hat, G> - tr(G) needs no identity matrix. The
        # loss is overhead-bound at small d, so this makes it cheaper than Barlow Twins.
        scaled = [scale_to_sqrt_dim(z.float()) for z in views]
        pairs = list(combinations(range(len(scaled)), 2))
        if self.reduce is not None:
            return self._global_loss(scaled, pairs, self.reduce)
        correlations = [cross_correlation(scaled[i], scaled[j]) for i, j in pairs]
        correlation = (
            correlations[0].detach()
            if len(pairs) == 1
            else torch.stack(correlations).detach().mean(dim=0)
        )
        g = self.adversary.get(correlation)
        trace_g = g.diagonal().sum()
        terms = [
            (scaled[i] - scaled[j]).pow(2).sum(dim=1).mean()
            + self.alpha * ((c * g).sum() - trace_g)
            for (i, j), c in zip(pairs, correlations)
        ]
        loss = terms[0] if len(terms) == 1 else torch.stack(terms).mean()
        self.adversary.update(correlation)
        return loss

    def _global_loss(
        self,
        scaled: list[Tensor],
        pairs: list[tuple[int, int]],
        reduce: Callable[[Tensor], Tensor],
    ) -> Tensor:
        """The loss of the batch summed by ``reduce`` (one collective per step forward).

        Each pair's squared distances and ``z_i^T z_j`` are summed over the local rows,
        packed with the row count into one tensor and reduced; dividing by the global row
        count gives the global alignment and ``C_hat``.
        """
        d = scaled[0].shape[1]
        sums = [
            torch.cat(
                [
                    (scaled[i] - scaled[j]).pow(2).sum().reshape(1),
                    (scaled[i].T @ scaled[j]).reshape(-1),
                ]
            )
            for i, j in pairs
        ]
        count = scaled[0].new_full((1,), float(scaled[0].shape[0]))
        total = reduce(torch.cat([*sums, count]))
        per_pair = total[:-1].reshape(len(pairs), 1 + d * d) / total[-1]
        alignment = per_pair[:, 0]
        correlations = per_pair[:, 1:].reshape(len(pairs), d, d)
        correlation = correlations.detach().mean(dim=0)
        g = self.adversary.get(correlation)
        eye = torch.eye(d, device=g.device, dtype=g.dtype)
        dual = ((correlations - eye) * g).sum(dim=(1, 2))
        self.adversary.update(correlation)
        return (alignment + self.alpha * dual).mean()


def _pairwise(
    fn: Callable[[Tensor, Tensor], Tensor],
) -> Callable[[Sequence[Tensor]], Tensor]:
    def criterion(views: Sequence[Tensor]) -> Tensor:
        return multiview_loss(fn, [z.float() for z in views])

    return criterion


#: Objectives by name; each value builds a criterion ``views -> scalar``.
OBJECTIVES: dict[str, Callable[..., Callable[[Sequence[Tensor]], Tensor]]] = {
    "act": lambda alpha, adversary, momentum: ACTCriterion(
        alpha, Adversary(adversary, momentum)
    ),
    "barlow_twins": lambda alpha, adversary, momentum: _pairwise(barlow_twins_loss),
    "vicreg": lambda alpha, adversary, momentum: _pairwise(vicreg_loss),
    "spectral": lambda alpha, adversary, momentum: _pairwise(spectral_contrastive_loss),
    "nt_xent": lambda alpha, adversary, momentum: _pairwise(nt_xent_loss),
}
