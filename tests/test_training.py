"""skact._training: the learning-rate schedule, the batch count, the Trainer's step, and
the training state across calls and failures.

The adversary survives a diverging step; warm_start applies the parameters set now; the
learning-rate schedule of each call; no step larger than batch_size; a batched
validation loss; and the CUDA / MPS paths, simulated on the CPU by patching device
checks.
"""

from __future__ import annotations

import contextlib
import copy
import io
import pickle
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.utils import check_random_state
from torch import nn

import skact
from skact import (
    ACTEncoder,
    NonFiniteLossError,
    _device,
    _encoding,
    _guards,
    _training,
    distributed,
)
from skact._training import Trainer, lr_factor, n_batches, weight_scale
from skact.augment.tabular import TabularAugment, _corrupt_everywhere
from skact.networks import MLP, build_encoder
from skact.objectives import ACTLoss, Adversary, make_objective

from _small import small_encoder

X = np.random.default_rng(0).normal(size=(64, 3))


def small(**params: Any) -> ACTEncoder:
    return small_encoder(**{"n_components": 2, **params})


@contextlib.contextmanager
def recorded_steps(
    record: Callable[[Trainer, torch.Tensor], object],
    before: Callable[[Trainer, torch.Tensor], None] | None = None,
) -> Iterator[list[object]]:
    """Record ``record(trainer, batch)`` at every training step (before the step)."""
    seen: list[object] = []
    original = Trainer.training_step

    def step(self: Trainer, batch: torch.Tensor) -> torch.Tensor:
        seen.append(record(self, batch))
        if before is not None:
            before(self, batch)
        return original(self, batch)

    with mock.patch.object(Trainer, "training_step", step):
        yield seen


def poison_at(step: int) -> Callable[[Trainer, torch.Tensor], None]:
    """Make the weights NaN before ``step``, as a diverging update would."""

    def poison(trainer: Trainer, batch: torch.Tensor) -> None:
        if trainer.step == step:
            with torch.no_grad():
                next(trainer.encoder.parameters()).fill_(float("nan"))

    return poison


# ------------------------------------------------- 9. the adversary after a divergence


@pytest.mark.parametrize("mode", ["previous", "ema"])
def test_adversary_does_not_record_a_non_finite_correlation(mode):
    adversary = Adversary(mode, momentum=0.5)
    adversary.update(torch.full((2, 2), float("nan")))
    assert adversary.state is None  # the first step's G then comes from its own batch
    adversary.update(torch.eye(2) * 3)
    kept = adversary.state.clone()
    adversary.update(torch.full((2, 2), float("inf")))
    torch.testing.assert_close(adversary.state, kept, rtol=0, atol=0)
    adversary.update(torch.eye(2) * 5)
    expected = 4 * torch.eye(2) if mode == "previous" else 0.5 * kept + 2 * torch.eye(2)
    torch.testing.assert_close(adversary.state, expected)


def test_adversary_drops_a_non_finite_saved_state():
    adversary = Adversary("ema")
    adversary.load_state_dict(
        {"mode": "ema", "momentum": 0.9, "state": torch.full((2, 2), float("nan"))}
    )
    assert adversary.state is None


def _diverged(**params: Any) -> ACTEncoder:
    """A model whose fit diverged in its third epoch (4 steps an epoch)."""
    enc = small(max_iter=4, **params)
    with (
        recorded_steps(lambda t, b: None, before=poison_at(9)),
        pytest.raises(NonFiniteLossError),
    ):
        enc.fit(X)
    assert enc.n_iter_ == 2
    return enc


def test_divergence_restores_the_adversary_with_the_weights():
    enc = _diverged()
    state = enc._adversary_state["state"]
    assert state is not None and bool(torch.isfinite(state).all())
    # The adversary is that of the last finite epoch: rerunning those 2 epochs gives it.
    reference = small(max_iter=4)
    with (
        mock.patch.object(Trainer, "run_epoch", _stop_after(2)),
        pytest.warns(UserWarning, match="interrupted"),
        pytest.raises(KeyboardInterrupt),
    ):
        reference.fit(X)
    torch.testing.assert_close(state, reference._adversary_state["state"], rtol=0, atol=0)


def _stop_after(epochs: int) -> Callable:
    original = Trainer.run_epoch
    calls = {"n": 0}

    def run_epoch(self: Trainer, n: int, take: Callable) -> float:
        calls["n"] += 1
        if calls["n"] > epochs:
            raise KeyboardInterrupt
        return original(self, n, take)

    return run_epoch


@pytest.mark.parametrize("how", ["warm_start", "partial_fit", "saved", "pickled"])
def test_training_goes_on_after_a_divergence(how, tmp_path):
    enc = _diverged()
    enc.set_params(learning_rate=1e-6, warm_start=True, max_iter=1)
    if how == "saved":
        enc.save(tmp_path / "m.skact")
        enc = skact.load(tmp_path / "m.skact")
    elif how == "pickled":
        enc = pickle.loads(pickle.dumps(enc))
    enc.fit(X) if how == "warm_start" else enc.partial_fit(X)
    assert enc.n_iter_ == 3 and np.isfinite(enc.loss_curve_).all()
    assert np.isfinite(enc.transform(X)).all()


def test_a_model_saved_with_a_nan_adversary_trains_again():
    """Files written before the fix can hold a NaN G: it is dropped on loading."""
    enc = small().fit(X)
    enc._adversary_state = {**enc._adversary_state}
    enc._adversary_state["state"] = torch.full_like(enc._adversary_state["state"], np.nan)
    enc.set_params(learning_rate=1e-6).partial_fit(X)
    assert np.isfinite(enc.loss_curve_).all()


# -------------------------------------------- 10. warm_start uses the parameters set now


def test_warm_start_applies_adversary_momentum_and_weight_decay():
    enc = small(warm_start=True, adversary="ema", adversary_momentum=0.9).fit(X)
    stored = enc._adversary_state["state"].clone()
    adam_steps = float(enc._optimizer_state["state"][0]["step"])
    enc.set_params(adversary="previous", adversary_momentum=0.5, weight_decay=0.25)

    def seen(trainer: Trainer, batch: torch.Tensor) -> tuple:
        group = trainer.optimizer.param_groups[0]
        state = trainer.adversary.state
        return (
            trainer.adversary.mode,
            trainer.adversary.momentum,
            group["weight_decay"],
            state,
        )

    with recorded_steps(seen) as steps:
        enc.fit(X)
    assert {s[:3] for s in steps} == {("previous", 0.5, 0.25)}
    # The running state is kept: the first step's G is the stored average...
    torch.testing.assert_close(steps[0][3], stored, rtol=0, atol=0)
    # ... and Adam's step counts go on.
    assert float(enc._optimizer_state["state"][0]["step"]) == adam_steps + len(steps)
    assert enc._optimizer_state["param_groups"][0]["weight_decay"] == 0.25
    assert enc._adversary_state["mode"] == "previous"
    assert enc._adversary_state["momentum"] == 0.5


def test_warm_start_momentum_changes_the_average():
    """The EMA of a warm start weighs the past by the momentum set now."""
    enc = small(warm_start=True, adversary_momentum=0.9).fit(X)
    enc.set_params(adversary_momentum=0.0, max_iter=1)
    last: list[torch.Tensor] = []
    original = Adversary.update

    def update(self: Adversary, correlation: torch.Tensor) -> None:
        last[:] = [correlation.detach().clone()]
        original(self, correlation)

    with mock.patch.object(Adversary, "update", update):
        enc.fit(X)
    # Momentum 0: G is the last batch's C_hat - I, with nothing of the past.
    eye = torch.eye(last[0].shape[0])
    torch.testing.assert_close(enc._adversary_state["state"], last[0] - eye)


# -------------------------------------------------- 11. the learning rate of each call


def _rates(call: Callable[[], object]) -> list[float]:
    with recorded_steps(lambda trainer, batch: trainer.learning_rate_now()) as rates:
        call()
    # recorded_steps keeps what the hook returns, typed object: here learning rates.
    return [float(r) for r in rates]  # type: ignore[arg-type]


def test_each_fit_runs_its_own_schedule():
    enc = small(max_iter=5, warm_start=True, learning_rate=0.01)
    first = _rates(lambda: enc.fit(X))
    # 64 rows in batches of 16: 20 steps, a 2-step warm-up, a cosine to 5% at the end.
    expected = [0.01 * lr_factor(s, 2, 20) for s in range(20)]
    np.testing.assert_allclose(first, expected)
    assert first[0] == pytest.approx(0.005) and first[-1] < 0.01 * 0.06
    # A warm start is the schedule of a fresh fit of its length, not a continuation.
    np.testing.assert_allclose(_rates(lambda: enc.fit(X)), expected)
    enc.set_params(max_iter=2)
    np.testing.assert_allclose(
        _rates(lambda: enc.fit(X)), [0.01 * lr_factor(s, 1, 8) for s in range(8)]
    )


def test_partial_fit_warms_up_over_its_first_calls_then_stays_at_the_peak():
    warmup = _training.PARTIAL_FIT_WARMUP_STEPS
    enc = small(learning_rate=0.01, max_iter=1)
    rates: list[float] = []
    for _ in range(30):  # 4 steps a call: the warm-up spans 25 calls
        rates += _rates(lambda: enc.partial_fit(X))
    np.testing.assert_allclose(rates[:warmup], 0.01 * np.arange(1, warmup + 1) / warmup)
    assert rates[warmup:] == [0.01] * (len(rates) - warmup)
    # After a fit (which ends near 5% of the peak) partial_fit warms up again...
    enc.fit(X)
    after_fit = _rates(lambda: enc.partial_fit(X))
    np.testing.assert_allclose(after_fit, 0.01 * np.arange(1, 5) / warmup)
    # ... and goes on from there, also after saving or pickling.
    np.testing.assert_allclose(
        _rates(lambda: pickle.loads(pickle.dumps(enc)).partial_fit(X)),
        0.01 * np.arange(5, 9) / warmup,
    )


def test_partial_fit_schedule_survives_save_and_load(tmp_path):
    enc = small(learning_rate=0.01).partial_fit(X)
    enc.save(tmp_path / "m.skact")
    loaded = skact.load(tmp_path / "m.skact")
    warmup = _training.PARTIAL_FIT_WARMUP_STEPS
    np.testing.assert_allclose(
        _rates(lambda: loaded.partial_fit(X)), 0.01 * np.arange(5, 9) / warmup
    )


# ---------------------------------------------------- 12. no step larger than batch_size


def test_511_rows_in_batches_of_256_take_two_steps():
    enc = small(batch_size=256, max_iter=1, n_components=2)
    data = np.random.default_rng(1).normal(size=(511, 3))
    with recorded_steps(lambda trainer, batch: batch.shape[0]) as sizes:
        enc.fit(data)
    assert sizes == [256, 255]


@pytest.mark.parametrize("batch_size", [2, 3, 5, 16])
def test_batches_never_exceed_batch_size_nor_fall_below_two(batch_size):
    trainer = Trainer(**_trainer_parts(batch_size))
    for n in range(2, 60):
        sizes = [len(b) for b in trainer.batches(n)]
        assert sum(sizes) == n and min(sizes) >= 2, (n, sizes)
        assert max(sizes) - min(sizes) <= 1
        if batch_size > 2 or n % 2 == 0:
            assert max(sizes) <= batch_size, (n, sizes)
        else:  # two rows a batch and an odd count: one batch of 3
            assert sorted(sizes)[-1] == 3 and len(sizes) == n // 2


def test_batch_count_rule():
    assert (
        n_batches(511, 256) == 2 and n_batches(512, 256) == 2 and n_batches(513, 256) == 3
    )
    # Data-parallel: the global count, limited by the smallest shard.
    assert n_batches(300, 64, smallest_shard=150) == 5
    assert n_batches(9, 2, smallest_shard=4) == 2


# ------------------------------------------------------ 13. a batched validation loss


def _validating_trainer(
    enc: ACTEncoder, data: torch.Tensor, amp_dtype: torch.dtype | None = None
) -> Trainer:
    """The trainer ``enc`` would continue with, holding out ``data``."""
    trainer = enc._make_trainer(
        len(X), None, view_fn=lambda batch, generator: batch, held_out=data
    )
    trainer.amp_dtype = amp_dtype
    return trainer


def test_validation_loss_is_batched_and_equals_the_unbatched_value(monkeypatch):
    enc = small(max_iter=1).fit(X)
    data = torch.from_numpy(X[:40]).float()
    whole = _validating_trainer(enc, data).validation_loss()
    rows: list[int] = []
    hook = enc.encoder_.register_forward_pre_hook(lambda m, args: rows.append(len(args[0])))
    monkeypatch.setattr(_encoding, "TRANSFORM_VALUES", 30)  # 10 rows of 3 features
    try:
        batched = _validating_trainer(enc, data).validation_loss()
    finally:
        hook.remove()
    assert max(rows) == 10 and sum(rows) == 2 * 40  # 2 views of the 40 rows
    assert batched == pytest.approx(whole, rel=1e-6)


def test_validation_loss_runs_in_the_training_precision():
    enc = small(max_iter=1).fit(X)
    dtypes: list[torch.dtype] = []
    enc.encoder_.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    data = torch.from_numpy(X[:20]).float()
    _validating_trainer(enc, data, torch.bfloat16).validation_loss()
    _validating_trainer(enc, data, None).validation_loss()
    assert dtypes == [torch.bfloat16, torch.float32]


def test_early_stopping_fit_uses_the_batched_loss(monkeypatch):
    monkeypatch.setattr(_encoding, "TRANSFORM_VALUES", 15)  # 5 rows of 3 features
    enc = small(early_stopping=True, validation_fraction=0.25, max_iter=2)
    rows: list[int] = []
    original = Trainer.validation_loss

    def validation_loss(self: Trainer) -> float:
        hook = self.encoder.register_forward_pre_hook(lambda m, a: rows.append(len(a[0])))
        try:
            return original(self)
        finally:
            hook.remove()

    monkeypatch.setattr(Trainer, "validation_loss", validation_loss)
    enc.fit(X)
    assert len(enc.validation_loss_curve_) == 2
    assert max(rows) == 5 and sum(rows) == 2 * 2 * 16  # 2 epochs x 2 views x 16 rows


def test_a_failing_validation_loss_keeps_the_fresh_model():
    calls = {"n": 0}
    original = Trainer.validation_loss

    def validation_loss(self: Trainer) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8 GiB")
        return original(self)

    enc = small(early_stopping=True, max_iter=4)
    with (
        mock.patch.object(Trainer, "validation_loss", validation_loss),
        pytest.raises(torch.cuda.OutOfMemoryError) as info,
    ):
        enc.fit(X)
    assert "the model trained so far (2 epochs) is kept" in "\n".join(info.value.__notes__)
    assert enc.n_iter_ == 2 and len(enc.loss_curve_) == 2
    assert enc._step == 2 * 4 and not enc.encoder_.training
    assert np.isfinite(enc.transform(X)).all()
    # and it goes on from there
    enc.set_params(early_stopping=False).partial_fit(X)
    assert enc.n_iter_ == 3


# --------------------------------------------------------- 14a. pickling a CUDA model


def test_unpickling_a_cuda_model_keeps_the_generator_state_on_the_cpu(monkeypatch):
    """The torch payload is mapped to CUDA (simulated: to the meta device); the
    generator state, a CPU ByteTensor for CUDA generators too, stays on the CPU."""
    enc = small().fit(X)
    state = enc._generator_state.clone()
    enc.device_ = torch.device("cuda", 0)
    blob = pickle.dumps(enc)
    real_load = torch.load
    mapped: list[object] = []

    def load_on_fake_cuda(f: Any, map_location: Any = None, **kwargs: Any) -> Any:
        mapped.append(map_location)
        tensors = real_load(f, map_location="cpu", **kwargs)
        on_cuda = torch.device(map_location).type == "cuda"
        return _map_tensors(tensors, "meta") if on_cuda else tensors

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch, "load", load_on_fake_cuda)
    restored = pickle.loads(blob)
    assert mapped == [torch.device("cuda", 0)]
    assert next(restored.encoder_.parameters()).device.type == "meta"
    assert restored._generator_state.device.type == "cpu"
    assert restored._generator_state.dtype == torch.uint8
    assert torch.equal(restored._generator_state, state)
    torch.Generator().set_state(restored._generator_state)  # accepted
    # deepcopy goes the same way
    assert copy.deepcopy(enc)._generator_state.device.type == "cpu"


def _map_tensors(value: Any, device: str) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, nn.Module):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _map_tensors(v, device) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_map_tensors(v, device) for v in value)
    return value


# ------------------------------------------- 14b. the OOM back-off under data parallel


def test_out_of_memory_under_ddp_shrinks_the_batch(monkeypatch):
    """Simulated: two ranks of 64 rows each, collectives replaced by the identity."""
    monkeypatch.setattr(
        distributed, "_replicate", lambda module, device, sync: (module, [])
    )
    monkeypatch.setattr(distributed, "_summed", lambda tensor: tensor.clone())
    parts = _trainer_parts(64)
    parts["criterion"] = make_objective("vicreg")
    world = distributed.World(
        rank=0, world_size=2, local_rank=0, device=torch.device("cpu")
    )
    parts["strategy"] = distributed.DataParallel(world, shard_sizes=(64, 64))
    trainer = Trainer(**parts)
    data = torch.randn(64, 4)
    tried: list[int] = []

    def take(idx: torch.Tensor) -> torch.Tensor:
        tried.append(len(idx))
        if len(idx) > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return data.index_select(0, idx)

    with pytest.warns(UserWarning, match="out of memory"):
        _guards.run_epoch_with_oom_retry(trainer, 64, take)
    # Global batches of 64, 32, then 16 rows: this rank's halves 32, 16, then 8.
    assert tried == [32, 16] + [8] * 8
    assert trainer.batch_size == 16 and trainer.step == 8


def _trainer_parts(batch_size: int) -> dict[str, Any]:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    return dict(
        encoder=encoder,
        projector=None,
        criterion=make_objective(ACTLoss(alpha=0.1)),
        optimizer=torch.optim.Adam(encoder.parameters(), lr=1e-3),
        view_fn=lambda batch, generator: batch,
        n_views=2,
        batch_size=batch_size,
        learning_rate=1e-3,
        warmup_steps=1,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        shuffle_rng=np.random.default_rng(0),
    )


# ----------------------------------------------------------- 14c. tables on Apple MPS


@pytest.fixture
def strict_generators(monkeypatch):
    """torch's random functions refuse a generator of another device type, as MPS
    tensors do with a CPU generator (the meta device stands in for MPS)."""
    for name in ("rand", "randn", "randint"):
        real = getattr(torch, name)

        def strict(*args: Any, _real: Callable = real, **kwargs: Any) -> torch.Tensor:
            generator, device = kwargs.get("generator"), kwargs.get("device")
            wanted = torch.device(device if device is not None else "cpu").type
            if generator is not None and generator.device.type != wanted:
                raise RuntimeError(
                    f"Expected a '{wanted}' device type for generator but found "
                    f"'{generator.device.type}'"
                )
            return _real(*args, **kwargs)

        monkeypatch.setattr(torch, name, strict)


@pytest.mark.parametrize("groups", [False, True])
def test_tabular_views_on_a_device_without_a_generator(strict_generators, groups):
    x = torch.randn(6, 4, generator=torch.Generator()).to("meta")
    group_of = torch.tensor([0, 0, 1, 2], device="meta") if groups else None
    augment = TabularAugment(corruption_rate=0.5, noise_scale=0.1)
    view = augment(
        x,
        x,
        torch.Generator().manual_seed(0),
        groups=group_of,
        n_groups=3 if groups else None,
    )
    assert view.shape == (6, 4) and view.device.type == "meta"


def test_tabular_views_on_the_cpu_are_unchanged():
    """Drawing on the generator's device changes nothing where it is the data's."""
    x = torch.arange(24.0).reshape(6, 4)
    view = _corrupt_everywhere(x, x, torch.Generator().manual_seed(0), 0.5, None, 4)
    g = torch.Generator().manual_seed(0)
    draw = torch.rand(6, 4, generator=g)
    rows = torch.randint(0, 6, (6, 4), generator=g)
    assert torch.equal(view, torch.where(draw < 0.5, x.gather(0, rows), x))


# --------------------------------------------------------- 14d. bf16 only from Ampere on


@pytest.mark.parametrize(
    ("capability", "expected"),
    [((7, 0), None), ((7, 5), None), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)],
)
def test_autocast_needs_compute_capability_8_of_the_device_in_use(
    monkeypatch, capability, expected
):
    asked: list[object] = []

    def get_device_capability(device: Any = None) -> tuple[int, int]:
        asked.append(device)
        return capability

    def emulation_counts(*args: Any, **kwargs: Any) -> bool:
        raise AssertionError("is_bf16_supported counts emulated bf16")

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", get_device_capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", emulation_counts)
    assert _device.autocast_dtype(torch.device("cuda", 1)) == expected
    assert asked == [torch.device("cuda", 1)]
    assert _device.autocast_dtype(torch.device("cpu")) is None


# ------------------------------------------- 14e. no reseeding of the CUDA generators


def test_fit_leaves_the_accelerators_generators_alone(monkeypatch):
    reseeded: list[str] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda s: reseeded.append("cuda"))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda s: reseeded.append("cuda"))
    monkeypatch.setattr(torch.mps, "manual_seed", lambda s: reseeded.append("mps"))
    small(max_iter=1).fit(X)
    assert reseeded == []


def test_initial_weights_are_those_of_the_global_seed():
    """The CPU weights are bit-identical to those built after torch.manual_seed, as
    before the change, for the same random_state."""
    init_seed = int(check_random_state(0).randint(0, 2**31 - 1, 3)[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        reference = build_encoder("mlp", (3,), 2, (8,))
    with recorded_steps(
        lambda trainer, batch: copy.deepcopy(trainer.encoder.state_dict())
    ) as states:
        small(max_iter=1).fit(X)
    first = states[0]
    assert isinstance(first, dict)
    for name, value in reference.state_dict().items():
        assert torch.equal(first[name], value), name


def test_generator_state_can_be_read_from_a_payload_of_older_skact():
    """Pickles of skact before the fix hold the generator state in the torch payload."""
    enc = small(max_iter=1).fit(X)
    state = enc.__getstate__()
    tensors = torch.load(io.BytesIO(state["_torch_payload"]), weights_only=False)
    tensors["_generator_state"] = torch.as_tensor(state.pop("_generator_state"))
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    state["_torch_payload"] = buffer.getvalue()
    del state["_partial_fit_start"]
    old = ACTEncoder.__new__(ACTEncoder)
    old.__setstate__(state)
    assert torch.equal(old._generator_state, enc._generator_state)
    old.partial_fit(X)
    assert old.n_iter_ == 2


# ------------------------------------------------- the schedule and the step, alone


def test_lr_factor_warms_up_linearly_then_decays_by_cosine_to_5_percent():
    # Warm-up over 4 steps: (step + 1) / 4.
    assert [lr_factor(s, 4, 24) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    # Cosine over the 20 steps after it: 0.05 + 0.95 * (1 + cos(pi * progress)) / 2.
    assert lr_factor(4, 4, 24) == pytest.approx(1.0)
    assert lr_factor(9, 4, 24) == pytest.approx(0.05 + 0.95 * (1 + 0.5**0.5) / 2)
    assert lr_factor(14, 4, 24) == pytest.approx(0.525)
    assert lr_factor(24, 4, 24) == pytest.approx(0.05)
    assert lr_factor(1000, 4, 24) == pytest.approx(0.05)  # stays at the floor
    # No known end (partial_fit) or an end inside the warm-up: the peak after it.
    assert lr_factor(50, 4, None) == 1.0
    assert lr_factor(5, 4, 4) == 1.0
    assert lr_factor(0, 0, 10) == 1.0  # no warm-up starts at the peak


def _mean_square_trainer(warmup_steps: int, total_steps: int | None) -> Trainer:
    """A Trainer of a tiny MLP whose loss is the mean square of its output."""
    torch.manual_seed(0)
    encoder = MLP(3, (8,), 2)
    return Trainer(
        encoder=encoder,
        projector=None,
        criterion=lambda zs: sum(z.pow(2).mean() for z in zs),
        optimizer=torch.optim.SGD(encoder.parameters(), lr=0.0),
        view_fn=lambda batch, gen: batch,
        n_views=2,
        batch_size=16,
        learning_rate=0.1,
        warmup_steps=warmup_steps,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        shuffle_rng=np.random.default_rng(0),
        total_steps=total_steps,
    )


def test_trainer_steps_decrease_the_loss_at_the_scheduled_rate():
    trainer = _mean_square_trainer(warmup_steps=2, total_steps=12)
    batch = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))
    losses, rates = [], []
    for _ in range(12):
        rate = trainer.learning_rate_now()
        losses.append(float(trainer.training_step(batch)))
        rates.append(trainer.optimizer.param_groups[0]["lr"])
        assert rates[-1] == rate
    assert trainer.step == 12
    assert rates == [0.1 * lr_factor(s, 2, 12) for s in range(12)]
    assert losses[-1] < 0.5 * losses[0]
    assert all(np.isfinite(losses))


def test_trainer_step_at_rate_zero_changes_no_weight():
    trainer = _mean_square_trainer(warmup_steps=0, total_steps=None)
    trainer.learning_rate = 0.0
    before = copy.deepcopy(trainer.encoder.state_dict())
    trainer.training_step(torch.randn(16, 3))
    after = trainer.encoder.state_dict()
    for key, value in before.items():
        if "running" in key or "num_batches" in key:
            continue  # BatchNorm's statistics follow the batch, not the optimiser
        assert torch.equal(after[key], value), key
    assert trainer.step == 1


def test_weight_scale_is_the_root_mean_square_of_trainable_parameters():
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 4.0]]))
        layer.bias.fill_(0.0)
    assert weight_scale([layer]) == pytest.approx((25 / 3) ** 0.5)
    layer.bias.requires_grad_(False)  # frozen parameters do not count
    assert weight_scale([layer]) == pytest.approx((25 / 2) ** 0.5)
    assert weight_scale([nn.ReLU()]) == 0.0


def test_native_bf16_is_false_for_a_cuda_device_this_torch_cannot_reach(monkeypatch):
    """Settings asked for device='cuda' on a build without CUDA: no bf16, no crash."""

    def unreachable(*args: Any, **kwargs: Any) -> tuple[int, int]:
        raise AssertionError("asked the CUDA driver although CUDA is not available")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", unreachable)
    assert _device.native_bf16(torch.device("cuda")) is False
    assert _device.autocast_dtype(torch.device("cuda")) is None
