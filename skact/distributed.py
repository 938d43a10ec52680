"""Data-parallel training with :mod:`torch.distributed` (``torchrun``, DDP).

When :class:`~skact.ACTEncoder` fits inside an initialised process group, every process
(a *rank*) passes the same data to ``fit``, trains on its shard of the rows, and holds a
replica of the networks wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel` (DDP). ``batch_size`` is the global
batch: each optimisation step takes ``batch_size / world_size`` rows on every rank.

The ACT loss is made that of the global batch. Each rank sums the alignment term and
``z_i^T z_j`` over its rows and the sums are all-reduced (:func:`shared_sum`), so every
rank computes the same global loss ``L`` and the same adversary ``G``. The upstream
gradients of the sum are then identical on the ``W`` ranks (``W`` = world size), so the
backward pass needs no collective: it multiplies by ``W`` what an all-reduce of them
would sum, and each rank receives ``W`` times its share of ``dL/dtheta``. DDP then
*averages* the ranks' gradients, dividing by ``W``: the update is exactly the gradient
of the global-batch loss, as one process would compute on the concatenated batch. Per
step that is two all-reduces: the packed sums, and the gradients of the encoder and the
projection head, which one DDP module holds.

The baseline objectives (Barlow Twins, VICReg, spectral, NT-Xent) are computed on each
rank's local batch; DDP averages their gradients (the usual DDP semantics) and the
reported loss is the mean of the ranks' local losses.

BatchNorm: on CUDA the BatchNorm layers are swapped for
:class:`~torch.nn.SyncBatchNorm` during training (statistics of the global batch) and
swapped back afterwards. PyTorch's SyncBatchNorm has no CPU kernel, so on CPU (gloo)
each rank normalises with the statistics of its own rows; the running statistics are
averaged over the ranks at the end of training.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ._device import resolve_device
from ._training import n_batches
from .objectives import ACTCriterion

__all__ = [
    "TORCHRUN_VARIABLES",
    "DataParallel",
    "World",
    "all_reduce_sum",
    "average_buffers",
    "current",
    "setup",
    "shared_sum",
]

#: Environment variables that ``torchrun`` sets and ``init_process_group`` reads.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over all ranks; gradients flow back through the sum.

    The backward pass all-reduces the incoming gradients too, so a rank's input gets the
    sum over ranks of the gradients with respect to the output (the behaviour of
    ``torch.distributed.nn.functional.all_reduce``, which recent PyTorch deprecates).

    Parameters
    ----------
    tensor : Tensor
        This rank's summand (on a device the process group's backend supports).

    Returns
    -------
    Tensor
        The sum over ranks, identical on every rank.
    """
    out = _AllReduceSum.apply(tensor)
    assert isinstance(out, Tensor)
    return out


def shared_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over all ranks, for a result that every rank uses identically.

    The forward pass is :func:`all_reduce_sum`'s. The backward pass needs no collective:
    when every rank computes the same function of the sum (the ACT loss of the global
    ``C_hat``, with the same ``G`` on every rank), the gradients arriving at the sum are
    equal on all ranks, so their sum over ranks is ``world_size`` times the local one.
    This saves one all-reduce per training step (a few milliseconds each with gloo).

    Parameters
    ----------
    tensor : Tensor
        This rank's summand.

    Returns
    -------
    Tensor
        The sum over ranks, identical on every rank.
    """
    out = _SharedSum.apply(tensor)
    assert isinstance(out, Tensor)
    return out


def _summed(tensor: Tensor) -> Tensor:
    out = tensor.clone(memory_format=torch.contiguous_format)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        return _summed(tensor)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return _summed(grad)


class _SharedSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        return _summed(tensor)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad * dist.get_world_size()


@dataclass(frozen=True)
class World:
    """The processes of an initialised process group that train one model together.

    Parameters
    ----------
    rank : int
        This process's rank.
    world_size : int
        Number of processes.
    local_rank : int
        Rank on this machine (``LOCAL_RANK`` of torchrun): picks the CUDA device.
    device : torch.device
        Where tensors of collectives live (CUDA for NCCL, the CPU otherwise).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    def place(self, device: torch.device) -> torch.device:
        """The device this rank trains on, given the estimator's device.

        An unindexed ``cuda`` becomes ``cuda:LOCAL_RANK`` (modulo the visible devices)
        and is made the current CUDA device, as NCCL expects.

        Parameters
        ----------
        device : torch.device

        Returns
        -------
        torch.device
        """
        if device.type != "cuda":
            return device
        if device.index is None:
            device = torch.device("cuda", self.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        return device

    def shard(self, X: Any) -> Any:
        """This rank's rows of ``X``: every ``world_size``-th row from ``rank`` on.

        Every rank must pass the same data (the whole data set); the shards are then
        disjoint and cover it. Strided slicing keeps a memmap a view.

        Parameters
        ----------
        X : array-like or sequence
            The data passed to ``fit`` on every rank.

        Returns
        -------
        array-like or sequence
            ``X[rank::world_size]``.
        """
        sizes = self.gather(len(X))
        if len(set(sizes)) > 1:
            raise ValueError(
                "under torch.distributed every rank must pass the same data to fit (the "
                f"whole data set; each rank trains on its shard); got {sizes} samples."
            )
        if sizes[0] // self.world_size < 2:
            raise ValueError(
                f"{sizes[0]} samples cannot be split into shards of at least 2 samples "
                f"for {self.world_size} ranks."
            )
        return X[self.rank :: self.world_size]

    def gather(self, value: int) -> list[int]:
        """Every rank's ``value``, in rank order.

        Parameters
        ----------
        value : int

        Returns
        -------
        list of int
        """
        mine = torch.tensor([value], dtype=torch.int64, device=self.device)
        out = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(out, mine)
        return [int(t.item()) for t in out]

    def sum(self, value: float) -> float:
        """Sum of ``value`` over the ranks (no gradient).

        Parameters
        ----------
        value : float

        Returns
        -------
        float
        """
        t = torch.tensor(value, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def mean(self, value: float) -> float:
        """Mean of ``value`` over the ranks (no gradient).

        Parameters
        ----------
        value : float

        Returns
        -------
        float
        """
        return self.sum(value) / self.world_size


def current(distributed: bool | str) -> World | None:
    """The :class:`World` an estimator trains in, or None to train alone.

    Parameters
    ----------
    distributed : bool or "auto"
        The estimator's ``distributed`` parameter. False: never. Otherwise: when a
        process group is initialised with more than one rank.

    Returns
    -------
    World or None

    Examples
    --------
    >>> from skact.distributed import current
    >>> current("auto") is None  # no process group in this process: train alone
    True
    """
    if distributed is False or not dist.is_available() or not dist.is_initialized():
        return None
    world_size = dist.get_world_size()
    if world_size < 2:
        return None
    rank = dist.get_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    return World(rank, world_size, local_rank, device)


def setup(distributed: bool | str, device: str | torch.device) -> None:
    """Initialise the default process group from torchrun's environment if asked to.

    Only ``distributed=True`` initialises a group, and only when none is initialised:
    NCCL when the estimator trains on CUDA, gloo otherwise, from the variables in
    :data:`TORCHRUN_VARIABLES` (``init_method="env://"``).

    Parameters
    ----------
    distributed : bool or "auto"
        The estimator's ``distributed`` parameter.
    device : str or torch.device
        The estimator's ``device`` parameter.

    Raises
    ------
    ValueError
        ``distributed=True`` outside a process group and outside torchrun.
    """
    if distributed is not True or (dist.is_available() and dist.is_initialized()):
        return
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if not dist.is_available() or missing:
        raise ValueError(
            "distributed=True needs an initialised torch.distributed process group or "
            f"the environment torchrun sets ({', '.join(TORCHRUN_VARIABLES)}); missing: "
            f"{', '.join(missing) or 'torch.distributed support in this torch build'}. "
            "Launch with `torchrun --nproc_per_node=N script.py`."
        )
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
        index = resolved.index
        torch.cuda.set_device(
            local_rank % torch.cuda.device_count() if index is None else index
        )
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


#: DDP's switch for "no buffer broadcast before each forward" (renamed in newer torch).
_NO_FORWARD_BUFFER_SYNC: dict[str, Any] = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)


class DataParallel:
    """A :class:`~skact._training.Trainer` strategy: one model trained on every rank.

    Given to the trainer (``Trainer(..., strategy=DataParallel(world, shard_sizes))``),
    which calls :meth:`attach` when it is built and :meth:`release` when it is closed.
    The encoder and the projection head are chained and wrapped in one DDP module
    (which broadcasts rank 0's parameters, so replicas start identical whatever each
    rank's ``random_state``, and reduces all gradients together), BatchNorm becomes
    SyncBatchNorm on CUDA, the ACT criterion reduces over the ranks, and every rank
    takes the same number of steps per epoch, computed from the global number of rows
    and the trainer's ``batch_size`` (so it follows the out-of-memory back-off).

    Parameters
    ----------
    world : World
    shard_sizes : sequence of int
        The rows each rank trains on, in rank order (see :meth:`World.gather`).
    """

    def __init__(self, world: World, shard_sizes: Sequence[int]) -> None:
        self.world = world
        self.shard_sizes = tuple(int(n) for n in shard_sizes)
        self._swapped: list[tuple[nn.Module, str, nn.Module]] = []

    def attach(
        self,
        encoder: nn.Module,
        projector: nn.Module | None,
        criterion: Callable[[Sequence[Tensor]], Tensor],
        device: torch.device,
        batch_size: int,
    ) -> tuple[nn.Module, nn.Module | None, Callable[[Sequence[Tensor]], Tensor]]:
        """The replica and the criterion that training steps run on this rank.

        Parameters
        ----------
        encoder, projector : nn.Module
            The networks, identical in structure on every rank.
        criterion : callable
        device : torch.device
        batch_size : int
            The global batch size.

        Returns
        -------
        tuple
            ``(replica, None, criterion)``: the replica runs the head after the encoder.
        """
        size = self.world.world_size
        if batch_size < 2 * size:
            raise ValueError(
                f"batch_size={batch_size} is the global batch over {size} ranks; it "
                f"must be at least 2 * world_size = {2 * size}."
            )
        if isinstance(criterion, ACTCriterion):
            # The ACT criterion's loss is a function of the global sums alone, the same
            # on every rank: its reduction needs no collective on the way back. A new
            # criterion sharing the adversary leaves the caller's unchanged.
            criterion = ACTCriterion(criterion.alpha, criterion.adversary, shared_sum)
        else:
            criterion = _mean_over_ranks(criterion, size)
        # The trainer runs the head on the encoder's output, so one DDP module chains
        # them: one gradient reduction per step for both networks instead of one each.
        chained = encoder if projector is None else nn.Sequential(encoder, projector)
        replica, self._swapped = _replicate(chained, device, device.type == "cuda")
        return replica, None, criterion

    def batch_count(self, n_samples: int, batch_size: int) -> int:
        """Batches per epoch from every rank's rows (:func:`~skact._training.n_batches`).

        Parameters
        ----------
        n_samples : int
            This rank's rows (the count comes from ``shard_sizes``).
        batch_size : int
            The global batch size.

        Returns
        -------
        int
        """
        return n_batches(sum(self.shard_sizes), batch_size, min(self.shard_sizes))

    def mean(self, value: float) -> float:
        """Mean of ``value`` over the ranks.

        Parameters
        ----------
        value : float

        Returns
        -------
        float
        """
        return self.world.mean(value)

    def release(self) -> None:
        """Give the networks their BatchNorm back (no collective: safe after an error)."""
        for parent, child_name, original in self._swapped:
            setattr(parent, child_name, original)
        self._swapped = []


def average_buffers(modules: Sequence[nn.Module | None], world: World) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) over the ranks.

    Under DDP each rank's last forward pass updates its own running statistics; this
    leaves every rank with the same model.

    Parameters
    ----------
    modules : sequence of nn.Module or None
    world : World
    """
    for module in modules:
        if module is None:
            continue
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
                buffer /= world.world_size


def _replicate(
    module: nn.Module, device: torch.device, sync_batchnorm: bool
) -> tuple[nn.Module, list[tuple[nn.Module, str, nn.Module]]]:
    """``module`` in DDP, and the BatchNorm layers swapped for SyncBatchNorm."""
    swapped = _swap_sync_batchnorm(module) if sync_batchnorm else []
    # Training-mode BatchNorm uses batch statistics, so the running statistics need no
    # broadcast before every forward pass; average_buffers reconciles them at the end.
    # On the CPU every core is busy computing, so DDP's overlap of communication with
    # the backward pass gains nothing while each extra collective costs gloo's latency
    # (a few ms): an explicit bucket size turns off DDP's small first bucket, and these
    # networks' gradients then go in one all-reduce. On CUDA, DDP's defaults stand.
    buckets: dict[str, Any] = {"bucket_cap_mb": 25.0} if device.type == "cpu" else {}
    try:
        replica = DistributedDataParallel(
            module,
            device_ids=[device.index] if device.type == "cuda" else None,
            **_NO_FORWARD_BUFFER_SYNC,
            **buckets,
        )
    except BaseException:
        # No strategy to release later: give the fitted networks their BatchNorm back.
        for parent, name, original in swapped:
            setattr(parent, name, original)
        raise
    return replica, swapped


def _swap_sync_batchnorm(module: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """Replace BatchNorm children by SyncBatchNorm sharing their parameters and buffers."""
    found: list[tuple[nn.Module, str, nn.Module]] = [
        (parent, name, child)
        for parent in module.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.modules.batchnorm._BatchNorm)
        and not isinstance(child, nn.SyncBatchNorm)
    ]
    for parent, name, child in found:
        setattr(parent, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    return found


def _mean_over_ranks(
    criterion: Callable[[Sequence[Tensor]], Tensor], world_size: int
) -> Callable[[Sequence[Tensor]], Tensor]:
    """A local-batch criterion whose value is averaged over the ranks.

    The gradient on each rank stays that of its own local loss (the all-reduce's backward
    sums ``world_size`` copies of ``1 / world_size``), so DDP's averaging gives the
    gradient of the mean of the local losses; the value is the same on every rank, so all
    ranks agree on the epoch loss and on stopping.
    """

    def mean_over_ranks(views: Sequence[Tensor]) -> Tensor:
        return all_reduce_sum(criterion(views)) / world_size

    return mean_over_ranks
