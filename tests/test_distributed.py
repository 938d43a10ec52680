"""Data-parallel training (skact.distributed): two gloo ranks on the CPU.

The ranks are spawned processes that talk over a TCP port picked at run time. Each
spawn runs several scenarios and saves what it measured; the tests compare those
records with a single process computing the same thing on the concatenated batch.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch import distributed as dist

from skact import ACTEncoder, distributed
from skact._training import Trainer
from skact.networks import MLP
from skact.objectives import ACTCriterion, ACTLoss, Adversary, make_objective

from _small import small_encoder

WORLD_SIZE = 2
N_FEATURES = 5
#: Rows of the global batch each rank takes: unequal on purpose.
SPLIT = (7, 5)
TIMEOUT_S = 240


# ---------------------------------------------------------------------- process helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun_env(rank: int, port: int) -> None:
    """The variables torchrun sets for one of two ranks on this machine."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD_SIZE),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)


def _spawn(worker, out: Path) -> list[dict]:
    """Run ``worker(rank, port, out)`` on two ranks; return each rank's saved record."""
    context = mp.spawn(worker, args=(_free_port(), str(out)), nprocs=WORLD_SIZE, join=False)
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the ranks did not finish within {TIMEOUT_S} s")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]


# ---------------------------------------------------------------------- one training step


class _RowViews:
    """Deterministic views that depend on the row only, so a batch split across ranks
    gets the same views as the whole batch in one process; view ``k`` differs from the
    others."""

    def __init__(self, n_views: int) -> None:
        self.n_views = n_views
        self.calls = 0

    def __call__(self, batch: Tensor, generator: torch.Generator) -> Tensor:
        k = self.calls % self.n_views
        self.calls += 1
        return torch.tanh(batch * (1.0 + 0.3 * k)) + 0.1 * k * batch.flip(1)


#: name -> (objective, n_views, adversary, with a projector)
SCENARIOS = {
    "act_batch": ("act", 2, "batch", False),
    "act_ema_3views_projector": ("act", 3, "ema", True),
    "vicreg": ("vicreg", 2, "ema", False),
}


def _trainer(name: str, strategy: distributed.DataParallel | None = None) -> Trainer:
    """A trainer with BatchNorm-free networks, identical in every process."""
    objective, n_views, adversary, with_projector = SCENARIOS[name]
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(N_FEATURES, 16), nn.Tanh(), nn.Linear(16, 6))
    projector = (
        nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 4))
        if with_projector
        else None
    )
    params = list(encoder.parameters()) + (
        list(projector.parameters()) if projector else []
    )
    return Trainer(
        encoder=encoder,
        projector=projector,
        criterion=make_objective(
            ACTLoss(alpha=0.5, adversary=adversary) if objective == "act" else objective
        ),
        optimizer=torch.optim.Adam(params, lr=1e-2),
        view_fn=_RowViews(n_views),
        n_views=n_views,
        batch_size=sum(SPLIT),
        learning_rate=1e-2,
        warmup_steps=1,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        shuffle_rng=np.random.default_rng(0),
        **({} if strategy is None else {"strategy": strategy}),
    )


def _global_batches() -> list[Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(sum(SPLIT), N_FEATURES, generator=g) for _ in range(2)]


def _local(batch: Tensor, rank: int) -> Tensor:
    start = sum(SPLIT[:rank])
    return batch[start : start + SPLIT[rank]]


def _record_steps(trainer: Trainer, batches: list[Tensor]) -> dict[str, list]:
    """Loss, gradients and parameters after each step."""
    modules = [m for m in (trainer.encoder, trainer.projector) if m is not None]
    record: dict[str, list] = {"loss": [], "grads": [], "params": []}
    for batch in batches:
        record["loss"].append(float(trainer.training_step(batch)))
        params = [p for m in modules for p in m.parameters()]
        record["grads"].append([p.grad.detach().clone() for p in params])
        record["params"].append([p.detach().clone() for p in params])
    return record


def _steps(rank: int) -> dict[str, dict[str, list]]:
    """Run every scenario's two steps on this rank's part of the global batches."""
    world = distributed.current("auto")
    assert world is not None and world.rank == rank
    records = {}
    for name in SCENARIOS:
        trainer = _trainer(name, distributed.DataParallel(world, shard_sizes=SPLIT))
        records[name] = _record_steps(trainer, [_local(b, rank) for b in _global_batches()])
        trainer.close()
        records[name]["unwrapped"] = [type(trainer.encoder).__name__]
    return records


def _assert_close(got, expected, atol=1e-5):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("name", ["act_batch", "act_ema_3views_projector"])
def test_act_step_equals_one_process_on_global_batch(records, name):
    """Two ranks on 7 + 5 rows give the loss, gradient and update of one process on the
    12 rows, over two steps (the second one with the adversary's stored state)."""
    reference = _record_steps(_trainer(name), _global_batches())
    for record in records:
        steps = record["steps"][name]
        np.testing.assert_allclose(steps["loss"], reference["loss"], atol=1e-5, rtol=0)
        for step in range(2):
            _assert_close(steps["grads"][step], reference["grads"][step])
            _assert_close(steps["params"][step], reference["params"][step])
        assert steps["unwrapped"] == ["Sequential"]


def test_local_objective_step_averages_rank_gradients(records):
    """Baseline objectives use each rank's batch: the loss is the mean of the local
    losses and the gradient the mean of the local gradients (DDP's semantics)."""
    locals_ = [
        _record_steps(_trainer("vicreg"), [_local(_global_batches()[0], r)])
        for r in range(WORLD_SIZE)
    ]
    loss = np.mean([rec["loss"][0] for rec in locals_])
    grads = [torch.stack(gs).mean(0) for gs in zip(*(rec["grads"][0] for rec in locals_))]
    whole = _record_steps(_trainer("vicreg"), [_global_batches()[0]])
    for record in records:
        steps = record["steps"]["vicreg"]
        assert steps["loss"][0] == pytest.approx(loss, abs=1e-5)
        _assert_close(steps["grads"][0], grads)
        # ... which is not the loss of the whole batch.
        assert abs(steps["loss"][0] - whole["loss"][0]) > 1e-3


# ---------------------------------------------------------------------- ACTEncoder.fit


def _data(n: int = 300) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 10)).astype(np.float32)


def _encoder(**params) -> ACTEncoder:
    sizes = dict(n_components=8, hidden_layer_sizes=(32,), projection_dim=8)
    return small_encoder(**{**sizes, "batch_size": 64, "max_iter": 3, **params})


def _worker(rank: int, port: int, out: str) -> None:
    """One rank: the ACTEncoder fits (which initialise the group), then the steps."""
    _torchrun_env(rank, port)
    record = _fits(rank)
    record["steps"] = _steps(rank)
    torch.save(record, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Both ranks' records, from one spawn (starting processes is the slow part)."""
    return _spawn(_worker, tmp_path_factory.mktemp("ranks"))


def _fits(rank: int) -> dict[str, object]:
    X = _data()
    record: dict[str, object] = {}
    # distributed=True initialises the gloo group from the torchrun variables.
    enc = _encoder(distributed=True, random_state=rank).fit(X)
    record["initialised_by_fit"] = dist.is_initialized() and dist.get_backend() == "gloo"
    record["encoder_type"] = type(enc.encoder_).__name__
    record["state"] = {
        **{f"encoder.{k}": v for k, v in enc.encoder_.state_dict().items()},
        **{f"projector.{k}": v for k, v in enc.projector_.state_dict().items()},
    }
    record["loss_curve"] = enc.loss_curve_
    record["n_steps"] = enc._step
    record["transform"] = enc.transform(X)
    record["unpickled_transform"] = pickle.loads(pickle.dumps(enc)).transform(X)
    stopped = _encoder(early_stopping=True, n_iter_no_change=1, random_state=rank).fit(X)
    record["validation_curve"] = stopped.validation_loss_curve_
    record["stopped_state"] = copy.deepcopy(stopped.encoder_.state_dict())
    streamed = _encoder(random_state=rank)
    for start in (0, 150):
        streamed.partial_fit(X[start : start + 150])
    record["partial_steps"] = streamed._step
    record["partial_state"] = streamed.encoder_.state_dict()
    alone = _encoder(distributed=False, random_state=rank, max_iter=1).fit(X)
    record["alone_steps"] = alone._step
    record["alone_state"] = alone.encoder_.state_dict()
    try:
        _encoder(max_iter=1).fit(X[: 100 + rank])
    except ValueError as exc:
        record["unequal_data_error"] = str(exc)
    return record


def test_fit_ranks_end_with_identical_weights(records):
    """Different random_state per rank, yet one model: rank 0's initial weights are
    broadcast and every update is the same."""
    first, second = records
    assert first["initialised_by_fit"] and second["initialised_by_fit"]
    assert first["encoder_type"] == second["encoder_type"] == "MLP"
    assert first["state"].keys() == second["state"].keys()
    for key, value in first["state"].items():
        assert torch.equal(value, second["state"][key]), key
    assert first["loss_curve"] == second["loss_curve"]
    np.testing.assert_array_equal(first["transform"], second["transform"])
    np.testing.assert_array_equal(first["unpickled_transform"], first["transform"])


def test_fit_batch_size_is_the_global_batch(records):
    # 300 rows, global batch 64: 5 steps per epoch on each rank (150 rows, 30 each),
    # none above 64 rows over the ranks.
    for record in records:
        assert record["n_steps"] == 3 * math.ceil(300 / 64)


def test_fit_early_stopping_agrees_across_ranks(records):
    first, second = records
    assert first["validation_curve"] == second["validation_curve"]
    for key, value in first["stopped_state"].items():
        assert torch.equal(value, second["stopped_state"][key]), key


def test_partial_fit_shards_each_chunk(records):
    """partial_fit under DDP: each 150-row chunk is one epoch of ceil(150 / 64) global
    steps."""
    first, second = records
    assert first["partial_steps"] == second["partial_steps"] == 2 * math.ceil(150 / 64)
    for key, value in first["partial_state"].items():
        assert torch.equal(value, second["partial_state"][key]), key


def test_fit_distributed_false_trains_alone(records):
    first, second = records
    # All 300 rows on each rank (not a shard), and two different models.
    assert first["alone_steps"] == second["alone_steps"] == math.ceil(300 / 64)
    assert any(
        not torch.equal(v, second["alone_state"][k])
        for k, v in first["alone_state"].items()
    )


def test_fit_rejects_different_data_on_ranks(records):
    for record in records:
        assert "every rank must pass the same data" in record["unequal_data_error"]
        assert "[100, 101]" in record["unequal_data_error"]


# ---------------------------------------------------------------------- in one process


def test_not_distributed_without_process_group():
    assert not dist.is_initialized()
    assert distributed.current("auto") is None
    assert distributed.current(True) is None


def test_distributed_true_needs_torchrun_environment(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        _encoder(distributed=True).fit(_data(20))


def test_act_criterion_reduce_identity_matches_single_process():
    """With a reduce that does nothing (one process), the global formulation gives the
    same loss, gradient and adversary state as the plain one."""
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(9, 4, generator=g, requires_grad=True) for _ in range(3)]
    losses, grads, states = [], [], []
    for reduce in (None, lambda t: t):
        criterion = ACTCriterion(0.3, Adversary("ema"), reduce=reduce)
        for _ in range(2):
            loss = criterion(views)
        (grad,) = torch.autograd.grad(loss, [views[0]])
        losses.append(loss)
        grads.append(grad)
        states.append(criterion.adversary.state)
    torch.testing.assert_close(losses[0], losses[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(states[0], states[1], atol=1e-6, rtol=0)


def test_sync_batchnorm_swap_shares_parameters_and_is_undone():
    """On CUDA, BatchNorm layers train as SyncBatchNorm: the swap must share parameters
    and running statistics with the originals and be undone afterwards."""
    mlp = MLP(4, (8, 8), 3)
    originals = [m for m in mlp.modules() if isinstance(m, nn.BatchNorm1d)]
    swapped = distributed._swap_sync_batchnorm(mlp)
    syncs = [m for m in mlp.modules() if isinstance(m, nn.SyncBatchNorm)]
    assert len(swapped) == len(syncs) == len(originals) == 2
    for sync, original in zip(syncs, originals):
        assert sync.weight is original.weight and sync.running_mean is original.running_mean
    for parent, name, original in swapped:
        setattr(parent, name, original)
    assert [m for m in mlp.modules() if isinstance(m, nn.BatchNorm1d)] == originals
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in mlp.modules())


def test_failed_replication_gives_the_batchnorm_layers_back():
    """If DDP cannot be built (here: no process group), the SyncBatchNorm swap made for
    CUDA is undone at once, since no replica will exist for release to undo it."""
    mlp = MLP(4, (8, 8), 3)
    originals = [m for m in mlp.modules() if isinstance(m, nn.BatchNorm1d)]
    assert not dist.is_initialized()
    with pytest.raises((RuntimeError, ValueError)):
        distributed._replicate(mlp, torch.device("cpu"), sync_batchnorm=True)
    assert [m for m in mlp.modules() if isinstance(m, nn.BatchNorm1d)] == originals
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in mlp.modules())


def test_data_parallel_strategy_leaves_the_callers_objects_as_they_were(monkeypatch):
    """The strategy returns a criterion reducing over the ranks without changing the
    caller's, refuses a global batch smaller than 2 rows per rank, and its release
    gives the networks their BatchNorm layers back (simulated: no process group)."""
    monkeypatch.setattr(distributed, "DistributedDataParallel", lambda module, **kw: module)
    world = distributed.World(
        rank=0, world_size=2, local_rank=0, device=torch.device("cpu")
    )
    mlp = MLP(4, (8,), 3)
    originals = [m for m in mlp.modules() if isinstance(m, nn.BatchNorm1d)]
    criterion = make_objective(ACTLoss(alpha=0.5))
    assert isinstance(criterion, ACTCriterion) and criterion.reduce is None
    strategy = distributed.DataParallel(world, shard_sizes=(7, 5))
    with pytest.raises(ValueError, match="at least 2 \\* world_size = 4"):
        strategy.attach(mlp, None, criterion, torch.device("cuda"), batch_size=3)
    replica, head, reducing = strategy.attach(
        mlp, None, criterion, torch.device("cuda"), batch_size=12
    )
    assert head is None and criterion.reduce is None
    assert isinstance(reducing, ACTCriterion) and reducing.reduce is distributed.shared_sum
    assert reducing.adversary is criterion.adversary  # G is the trainer's to snapshot
    assert any(isinstance(m, nn.SyncBatchNorm) for m in replica.modules())
    assert strategy.batch_count(7, batch_size=12) == 1  # 12 rows over both ranks
    strategy.release()
    assert [m for m in mlp.modules() if isinstance(m, nn.BatchNorm1d)] == originals
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in mlp.modules())
