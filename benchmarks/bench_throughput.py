"""Training and transform throughput of ACTEncoder, side by side with the alternatives.

Cases (``--device cpu`` runs the first three, ``--device cuda`` the last; ``--cases``
picks some by name):

- ``tabular-mlp``: a float32 table, 64 features, the default MLP encoder, on the CPU;
- ``tabular-mlp-small``: the same with a 128-wide MLP, as context (no targets): the
  ratio to the conventional pipeline grows as the network's step gets cheaper;
- ``image-convnet``: 32x32 RGB uint8 images, the small ConvNet, on the CPU;
- ``image-resnet18``: 32x32 RGB uint8 images, the CIFAR ResNet-18, on CUDA (bf16).

For each case, in one run and on the same modules (the networks, optimiser and
criterion that ``ACTEncoder`` builds, see ``ACTEncoder._make_trainer``):

- ``fit``: samples/s of ``ACTEncoder.fit`` without its one-time set-up: the epochs of
  one fit of ``1 + E`` epochs, each timed from outside ``Trainer.run_epoch``, the
  first left out;
- ``bare step``: the same training step on views made in advance: the upper bound;
- ``conventional``: the usual pipeline, per-sample augmentation in a
  ``torch.utils.data.Dataset`` batched by a ``DataLoader`` (per-row numpy SCARF
  corruption for tables; per-image PIL crop, flip and colour operations for images, as
  the authors' torchvision code does), then the same step;
- ``breakdown``: where a training step's time goes (batch indexing, augmentation,
  forward, loss, backward, optimiser), each phase timed between device syncs;
- ``transform``: samples/s, and its peak memory, measured in a fresh subprocess as the
  rise of peak RSS over the RSS after the data is loaded (200,000 x 64 float32 rows or
  50,000 x 32 x 32 x 3 uint8 images), against twice the output's size;
- ``fit memory``: the same measurement around ``fit`` (with a tiny network, so that the
  data path is what is measured), against the size of a float64 copy of the data;
- ``scaling`` (tables): fit time per epoch at n = 10k, 40k and 160k rows;
- ``loss``: forward + backward time of the ACT criterion and of Barlow Twins on the same
  embeddings.

Ratios and targets are printed and saved as ``throughput-<device>.json`` and ``.md`` in
``--out`` (default ``benchmarks/results``), with the machine, torch version, date,
command and the load average (timings on a busy machine are not trustworthy).

On the CPU both sides of every ratio run with the same number of torch threads
(``--threads``, default 1) and the DataLoader with ``--workers`` processes (default 0 on
the CPU: the per-sample work then shares the one core, like skact's batched ops; on
CUDA up to 8). With one thread and no workers, times are this process's CPU time
(``--clock``), which other jobs on a shared machine disturb far less than wall time;
the machine's speed still drifts by 10-30% over seconds on a shared VM. So the three
throughputs are measured side by side: next to each epoch of the fit (after one, before
the next, in turn) as many steps of the bare step and of the conventional pipeline run,
and each ratio is the median over these adjacent (fit epoch, chunk) pairs, with its
interquartile range.

Usage::

    python benchmarks/bench_throughput.py --device cpu            # several minutes
    python benchmarks/bench_throughput.py --device cpu --quick    # a smoke run
    python benchmarks/bench_throughput.py --device cuda --out DIR
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock


def _early_threads(argv: list[str]) -> None:
    """Fix OpenMP's thread count before torch is imported (torch reads it once)."""
    if "--threads" in argv:
        os.environ["OMP_NUM_THREADS"] = argv[argv.index("--threads") + 1]
    elif "cuda" not in argv:
        os.environ.setdefault("OMP_NUM_THREADS", "1")


if __name__ == "__main__":
    _early_threads(sys.argv)

# These imports follow _early_threads on purpose (hence noqa: E402): torch reads
# OMP_NUM_THREADS once, when it is first imported.
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from skact import ACTEncoder, _device, _guards, _training  # noqa: E402
from skact._environment import versions  # noqa: E402
from skact.objectives import ACTLoss, make_objective  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

#: The clock of every timing: wall time, or this process's CPU time (see ``--clock``).
clock: Callable[[], float] = time.perf_counter


# ---------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One benchmarked configuration and the sizes it is measured at."""

    name: str
    kind: str  # "tabular" or "image"
    device: torch.device
    sample_shape: tuple[int, ...]  # one raw sample: (64,) or (32, 32, 3)
    params: dict[str, Any]  # ACTEncoder parameters besides max_iter
    n_train: int  # rows / images of the throughput fit
    epochs: int  # E: the fit runs 1 + E epochs, E of them paired with the other pipelines
    steps: int  # timed steps of the breakdown
    transform_n: int  # samples of the transform throughput
    memory_n: int  # samples of the memory probes
    scaling_n: tuple[int, ...] = ()  # tables only
    repeats: int = 1  # rounds of the scaling measurement (at least 2; best kept)
    context: str = ""  # non-empty: a secondary case, reported without targets


def make_cases(device: str, quick: bool) -> list[Case]:
    """The cases of one run: tables and the ConvNet on the CPU, ResNet-18 on CUDA.

    ``tabular-mlp-small`` (a 128-wide MLP) is context for ``tabular-mlp``: how the
    ratio to the conventional pipeline grows when the network's step is cheaper.
    """
    if device == "cuda":
        resnet = {"encoder": "resnet18", "batch_size": 256, "random_state": 0}
        return [
            Case(
                "image-resnet18", "image", torch.device("cuda"), (32, 32, 3),
                {**resnet, "device": "cuda"},
                n_train=2048 if quick else 10240, epochs=1 if quick else 4,
                steps=10 if quick else 40, transform_n=2048 if quick else 10000,
                memory_n=5000 if quick else 50000, repeats=1 if quick else 2,
            ),
        ]  # fmt: skip
    cpu = torch.device("cpu")
    tabular = {"batch_size": 256, "random_state": 0, "device": "cpu"}
    convnet = {"encoder": "convnet", "batch_size": 256, "random_state": 0, "device": "cpu"}
    return [
        Case(
            "tabular-mlp", "tabular", cpu, (64,), tabular,
            n_train=4096 if quick else 10240, epochs=2 if quick else 24,
            steps=10 if quick else 60, transform_n=20000 if quick else 200000,
            memory_n=200000, repeats=1 if quick else 3,
            scaling_n=(1024, 4096) if quick else (10_000, 40_000, 160_000),
        ),
        Case(
            "tabular-mlp-small", "tabular", cpu, (64,),
            {**tabular, "hidden_layer_sizes": (128,)},
            n_train=4096 if quick else 10240, epochs=2 if quick else 24,
            steps=10 if quick else 60, transform_n=20000 if quick else 200000,
            memory_n=20000, repeats=1 if quick else 3,
            context="hidden_layer_sizes=(128,): context for tabular-mlp, no targets",
        ),
        Case(
            "image-convnet", "image", cpu, (32, 32, 3), convnet,
            n_train=512 if quick else 1024, epochs=1 if quick else 2,
            steps=2 if quick else 8, transform_n=512 if quick else 4096,
            memory_n=2000 if quick else 50000,
        ),
    ]  # fmt: skip


def make_data(
    kind: str, n: int, sample_shape: tuple[int, ...], seed: int = 0
) -> np.ndarray:
    """Synthetic data: standard normal float32 rows, or uint8 RGB images (n, H, W, 3).

    The content does not change the cost of any measured operation. The images are
    smooth random fields rather than white noise, so that crops and colour jitter see
    image-like statistics.
    """
    rng = np.random.default_rng(seed)
    if kind == "tabular":
        return rng.standard_normal((n, *sample_shape), dtype=np.float32)
    height, width, channels = sample_shape
    out = np.empty((n, height, width, channels), dtype=np.uint8)
    for start in range(0, n, 4096):
        m = min(4096, n - start)
        coarse = rng.integers(
            0, 256, (m, height // 4, width // 4, channels), dtype=np.uint8
        )
        out[start : start + m] = coarse.repeat(4, axis=1).repeat(4, axis=2)
    return out


# ---------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings on CUDA are otherwise meaningless)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _synced(device: torch.device) -> float:
    """The clock after the device's queued work is done."""
    sync(device)
    return clock()


def fit_seconds(case: Case, X: np.ndarray, max_iter: int) -> tuple[float, ACTEncoder]:
    """Wall time of ``ACTEncoder(**params, max_iter=max_iter).fit(X)``."""
    encoder = ACTEncoder(**case.params, max_iter=max_iter)
    sync(case.device)
    start = clock()
    encoder.fit(X)
    sync(case.device)
    return clock() - start, encoder


@dataclass
class Bound:
    """The training pieces of a fitted estimator, bound to stored data as fit binds them."""

    trainer: _training.Trainer
    data: Tensor
    n_views: int
    device: torch.device

    def take(self, idx: Any) -> Tensor:
        """Rows ``idx``: a numpy array (the bare and conventional steps) or, inside
        ``Trainer.run_epoch``, a tensor already on the device."""
        if isinstance(idx, np.ndarray):
            idx = torch.from_numpy(idx).to(self.device)
        return self.data.index_select(0, idx)  # as fit gathers its batches

    def views(self, batch: Tensor) -> Tensor:
        gen = self.trainer.generator
        return torch.cat([self.trainer.view_fn(batch, gen) for _ in range(self.n_views)])

    def batches(self) -> Iterator[np.ndarray]:
        while True:
            yield from self.trainer.batches(self.data.shape[0])

    def autocast(self) -> Any:
        dtype = self.trainer.amp_dtype
        return torch.autocast(
            self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        )

    def step(self, x: Tensor) -> Tensor:
        """Forward, loss, backward and optimiser step on ready-made views ``x``."""
        trainer = self.trainer
        with self.autocast():
            z = trainer.encoder(x)
            if trainer.projector is not None:
                z = trainer.projector(z)
        loss = trainer.criterion(list(z.float().chunk(self.n_views)))
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        return loss.detach()


def bind(encoder: ACTEncoder, X: np.ndarray) -> Bound:
    """The trainer ``encoder`` would continue with, on ``X`` stored as fit stores it.

    This mirrors ``ACTEncoder._train``: the adapter's storage on the device, batches
    indexed from it, and views drawn by the adapter with the whole data as the pool.
    """
    adapter = encoder._adapter
    device = encoder.device_
    data = _device.to_device(adapter.to_storage(adapter_input(encoder, X)), device)
    trainer = encoder._make_trainer(
        data.shape[0], None, view_fn=lambda batch, gen: adapter.view(batch, data, gen)
    )
    for module in (trainer.encoder, trainer.projector):
        if module is not None:
            module.train()
    return Bound(trainer, data, encoder.n_views, device)


def adapter_input(encoder: ACTEncoder, X: np.ndarray) -> Any:
    """``X`` as the estimator's validation hands it to the adapter."""
    return encoder._read_input(X, reset=False)[1]


def measure_breakdown(bound: Bound, steps: int) -> dict[str, float]:
    """Milliseconds per step of each phase of fit's training step, between syncs."""
    trainer, device = bound.trainer, bound.device
    phases = dict.fromkeys(
        ("index", "augment", "forward", "loss", "backward", "optimizer"), 0.0
    )
    batches = bound.batches()
    for i in range(steps + 2):  # two warm-up steps
        marks = [clock()]
        batch = bound.take(next(batches))
        marks.append(_synced(device))
        x = bound.views(batch)
        marks.append(_synced(device))
        with bound.autocast():
            z = trainer.encoder(x)
            if trainer.projector is not None:
                z = trainer.projector(z)
        marks.append(_synced(device))
        loss = trainer.criterion(list(z.float().chunk(bound.n_views)))
        marks.append(_synced(device))
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(_synced(device))
        trainer.optimizer.step()
        marks.append(_synced(device))
        if i >= 2:
            for name, (a, b) in zip(phases, itertools.pairwise(marks)):
                phases[name] += (b - a) * 1e3 / steps
    phases["total"] = sum(phases.values())
    return phases


class Bare:
    """The training step alone on views drawn in advance (the upper bound), in chunks."""

    def __init__(self, bound: Bound, n_premade: int = 8) -> None:
        self.bound = bound
        batches = bound.batches()
        self.premade = [bound.views(bound.take(next(batches))) for _ in range(n_premade)]
        for x in self.premade[:2]:
            bound.step(x)
        sync(bound.device)

    def chunk(self, steps: int) -> tuple[float, int]:
        """Seconds and samples of ``steps`` steps."""
        start = _synced(self.bound.device)
        samples = 0
        for i in range(steps):
            x = self.premade[i % len(self.premade)]
            self.bound.step(x)
            samples += x.shape[0] // self.bound.n_views
        return _synced(self.bound.device) - start, samples


def measure_transform(encoder: ACTEncoder, X: np.ndarray, device: torch.device) -> float:
    """Samples/s of ``transform`` (after a small warm-up call)."""
    encoder.transform(X[:256])
    sync(device)
    start = clock()
    encoder.transform(X)
    sync(device)
    return len(X) / (clock() - start)


# ---------------------------------------------------------------- conventional pipeline


class _PerSampleDataset(Dataset):
    """Base of the per-sample pipelines: a per-process numpy generator."""

    def __init__(self, n_views: int, seed: int) -> None:
        self.n_views = n_views
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._pid = -1

    def rng(self) -> np.random.Generator:
        if self._pid != os.getpid():  # a DataLoader worker: its own stream
            info = torch.utils.data.get_worker_info()
            self._rng = np.random.default_rng([self.seed, 0 if info is None else info.id])
            self._pid = os.getpid()
        assert self._rng is not None
        return self._rng


class RowCorruptionDataset(_PerSampleDataset):
    """SCARF views made row by row in numpy, as a per-sample Dataset does it.

    Each view replaces every feature with probability ``corruption_rate`` by the same
    feature of a random row (and adds Gaussian noise when ``noise_scale > 0``).
    """

    def __init__(
        self, rows: np.ndarray, n_views: int, corruption_rate: float, noise_scale: float
    ) -> None:
        super().__init__(n_views, seed=1)
        self.rows = rows
        self.corruption_rate = corruption_rate
        self.noise_scale = noise_scale
        self.columns = np.arange(rows.shape[1])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[np.ndarray, ...]:
        rng = self.rng()
        n, d = self.rows.shape
        x = self.rows[i]
        views = []
        for _ in range(self.n_views):
            mask = rng.random(d) < self.corruption_rate
            donors = self.rows[rng.integers(0, n, d), self.columns]
            view = np.where(mask, donors, x)
            if self.noise_scale > 0:
                view = view + self.noise_scale * rng.standard_normal(d, dtype=np.float32)
            views.append(view.astype(np.float32, copy=False))
        return tuple(views)


class PILAugmentDataset(_PerSampleDataset):
    """Image views made one image at a time with PIL, as torchvision's transforms do.

    The authors' pipeline (W-MSE code base): ``RandomApply(ColorJitter(0.4, 0.4, 0.4,
    0.1), p=0.8)``, ``RandomGrayscale(0.2)``, ``RandomResizedCrop(32, scale=(0.08, 1),
    bicubic)``, ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize``. torchvision
    is not a dependency, so the same operations are written with PIL and numpy here.
    """

    def __init__(self, images: np.ndarray, n_views: int, mean: np.ndarray, std: np.ndarray):
        super().__init__(n_views, seed=2)
        self.images = images  # (n, H, W, 3) uint8
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, ...]:
        from PIL import Image

        image = Image.fromarray(self.images[i])
        return tuple(self.view(image) for _ in range(self.n_views))

    def view(self, image: Any) -> np.ndarray:
        from PIL import Image, ImageEnhance

        rng = self.rng()
        if rng.random() < 0.8:
            for op in rng.permutation(4):
                if op == 0:
                    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.6, 1.4))
                elif op == 1:
                    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.6, 1.4))
                elif op == 2:
                    image = ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))
                else:
                    image = _shift_hue(image, rng.uniform(-0.1, 0.1))
        if rng.random() < 0.2:
            image = image.convert("L").convert("RGB")
        width, height = image.size
        box = _resized_crop_box(rng, width, height, (0.08, 1.0), (3 / 4, 4 / 3))
        image = image.resize((width, height), Image.Resampling.BICUBIC, box=box)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return (pixels - self.mean) / self.std


def _shift_hue(image: Any, shift: float) -> Any:
    """torchvision's ``adjust_hue`` on a PIL image: rotate the hue channel in HSV."""
    from PIL import Image

    h, s, v = image.convert("HSV").split()
    hue = np.asarray(h, dtype=np.uint8) + np.uint8(int(shift * 255) % 256)  # wraps
    return Image.merge("HSV", (Image.fromarray(hue, "L"), s, v)).convert("RGB")


def _resized_crop_box(
    rng: np.random.Generator,
    width: int,
    height: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params``: 10 tries, then a central crop."""
    area = width * height
    log_ratio = np.log(ratio)
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = float(np.exp(rng.uniform(*log_ratio)))
        w = round(np.sqrt(target * aspect))
        h = round(np.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return (left, top, left + w, top + h)
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return (left, top, left + side, top + side)


def conventional_dataset(case: Case, encoder: ACTEncoder, X: np.ndarray) -> Dataset:
    """The per-sample Dataset doing the same augmentation as skact's adapter."""
    if case.kind == "tabular":
        table: Any = encoder._adapter  # a TabularAdapter: its views' resolved rate
        rows = table.to_storage(X).numpy()  # standardised once, as usual
        rate = table.augment.corruption_rate
        return RowCorruptionDataset(rows, encoder.n_views, rate, encoder.noise_scale)
    adapter: Any = encoder._adapter  # an ImageAdapter: per-channel mean and std
    return PILAugmentDataset(X, encoder.n_views, adapter.mean, adapter.std)


class Conventional:
    """A DataLoader over per-sample augmentation feeding the same step, timed in chunks.

    The loader and its iterator live across chunks (workers start once); two steps (and
    two per worker, past the prefetch) are run at creation as a warm-up.
    """

    def __init__(
        self, case: Case, encoder: ACTEncoder, bound: Bound, X: np.ndarray, workers: int
    ) -> None:
        self.bound = bound
        self.on_cuda = bound.device.type == "cuda"
        self.loader = DataLoader(
            conventional_dataset(case, encoder, X),
            batch_size=bound.trainer.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            pin_memory=self.on_cuda,
            persistent_workers=workers > 0,
        )
        self.iterator = self._forever()
        for _ in range(2 + 2 * workers):
            bound.step(self._next_input())
        sync(bound.device)

    def _forever(self) -> Iterator[list[Tensor]]:
        while True:
            yield from self.loader

    def _next_input(self) -> Tensor:
        views = next(self.iterator)
        x = torch.cat([v.to(self.bound.device, non_blocking=True) for v in views])
        if self.on_cuda and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def chunk(self, steps: int) -> tuple[float, int]:
        """Seconds and samples of ``steps`` steps, data loading included."""
        start = _synced(self.bound.device)
        for _ in range(steps):
            self.bound.step(self._next_input())
        return _synced(self.bound.device) - start, steps * self.bound.trainer.batch_size


def measure_paired(
    case: Case, X: np.ndarray, bare: Bare, conventional: Conventional
) -> tuple[dict[str, Any], ACTEncoder]:
    """A fit of ``1 + E`` epochs, each of its last E epochs paired with one chunk of the
    bare step and one of the conventional pipeline, as many steps as the epoch took.

    The chunks run right after the even-numbered paired epochs and right before the
    odd-numbered ones, bare step first and conventional first in turn, so that no
    pipeline always runs first or last (a trend in the machine's speed, or the cache a
    pipeline leaves behind, then favours none of them).

    The epochs are timed from outside ``Trainer.run_epoch`` (``fit`` calls it through
    ``skact._guards.run_epoch_with_oom_retry``, wrapped here), so fit's own code runs
    unchanged; its per-epoch work outside ``run_epoch`` is bookkeeping of microseconds.
    Each chunk runs next to the epoch it is paired with, on the same machine state: the
    per-pair ratios cancel the drift of the machine's speed that separate rounds suffer
    from.

    Returns the seconds and samples of every paired epoch and chunk, the fit's time
    outside its epochs (set-up before the first, wrap-up after the last), its first
    epoch's time and the fitted estimator.
    """
    device = bare.bound.device
    steps = len(bare.bound.trainer.batches(len(X)))
    times: dict[str, list[float]] = {"fit": [], "bare": [], "conventional": []}
    samples: dict[str, int] = {}
    real_epoch = _guards.run_epoch_with_oom_retry

    def chunks(k: int) -> None:
        order: list[tuple[str, Bare | Conventional]] = [
            ("bare", bare),
            ("conventional", conventional),
        ]
        for name, pipeline in order if k % 2 == 0 else order[::-1]:
            seconds, samples[name] = pipeline.chunk(steps)
            times[name].append(seconds)

    def timed_epoch(trainer: _training.Trainer, n_samples: int, take: Any) -> float:
        k = len(times["fit"])  # index of this epoch among the paired ones
        is_paired = trainer.step >= steps  # the first epoch (warm-up) is not paired
        if is_paired and k % 2 == 1:
            chunks(k)
        start = _synced(device)
        loss = real_epoch(trainer, n_samples, take)
        seconds = _synced(device) - start
        if not is_paired:
            times["first"] = [seconds]
            return loss
        times["fit"].append(seconds)
        samples["fit"] = n_samples
        if k % 2 == 0:
            chunks(k)
        return loss

    encoder = ACTEncoder(**case.params, max_iter=1 + case.epochs)
    start = _synced(device)
    with mock.patch.object(_guards, "run_epoch_with_oom_retry", timed_epoch):
        encoder.fit(X)
    total = _synced(device) - start - sum(times["bare"]) - sum(times["conventional"])
    first = times.pop("first")[0]
    paired = {
        "steps_per_epoch": steps,
        "seconds": times,
        "samples": samples,
        "outside_epochs_s": total - first - sum(times["fit"]),
        "first_epoch_s": first,
        "epoch_s": statistics.median(times["fit"]),
    }
    return paired, encoder


def _quartiles(values: list[float]) -> dict[str, float]:
    """Median and quartiles (all three the value itself when there is one)."""
    if len(values) < 2:
        return dict.fromkeys(("median", "q1", "q3"), values[0])
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3}


def summarise_paired(paired: dict[str, Any]) -> dict[str, Any]:
    """Samples/s of each pipeline (median over its chunks) and the paired ratios."""
    rates = {
        name: [paired["samples"][name] / t for t in seconds]
        for name, seconds in paired["seconds"].items()
    }
    per_s = {name: statistics.median(r) for name, r in rates.items()}

    def ratio(a: str, b: str) -> dict[str, float]:
        return _quartiles([x / y for x, y in zip(rates[a], rates[b])])

    return {
        "samples_per_s": per_s,
        "fit_over_bare": ratio("fit", "bare"),
        "fit_over_conventional": ratio("fit", "conventional"),
        "bare_over_conventional": ratio("bare", "conventional"),
        "pairs": len(rates["fit"]),
    }


# ---------------------------------------------------------------------------- losses


def measure_losses(
    device: torch.device, n: int, dims: tuple[int, ...], steps: int
) -> list[dict[str, Any]]:
    """Forward + backward ms of ACT and Barlow Twins on the same two views' embeddings."""
    rows = []
    gen = torch.Generator(device=device).manual_seed(0)
    for d in dims:
        z = torch.randn(2, n, d, generator=gen, device=device)
        names = ("act", "barlow_twins")
        criteria = {
            name: make_objective(ACTLoss(alpha=0.1) if name == "act" else name)
            for name in names
        }
        inputs = {name: [v.clone().requires_grad_() for v in z] for name in names}
        timings = dict.fromkeys(names, float("inf"))
        # Rounds alternate the two losses, so that a change of load on the machine
        # touches both; the best round of each is kept.
        for _ in range(5):
            for name in names:
                criterion, views = criteria[name], inputs[name]
                for _ in range(3):  # warm-up
                    criterion(views).backward()
                sync(device)
                start = clock()
                for _ in range(steps):
                    criterion(views).backward()
                sync(device)
                timings[name] = min(timings[name], (clock() - start) / steps * 1e3)
        rows.append(
            {
                "n": n,
                "d": d,
                "act_ms": timings["act"],
                "barlow_twins_ms": timings["barlow_twins"],
                "act_over_barlow_twins": timings["act"] / timings["barlow_twins"],
            }
        )
    return rows


# ---------------------------------------------------------------------------- scaling


def measure_scaling(case: Case) -> list[dict[str, float]]:
    """Seconds of one training epoch at each n, timed from inside.

    Each n gets a model (a 1-epoch fit) and fit's trainer bound to its data; epochs of
    the different n then alternate for ``max(2, case.repeats)`` rounds and the fastest
    epoch of each n counts, so that load on a shared machine spreads over all sizes.
    """
    bounds = {}
    for n in case.scaling_n:
        X = make_data(case.kind, n, case.sample_shape, seed=n)
        bounds[n] = bind(fit_seconds(case, X, 1)[1], X)
    best = dict.fromkeys(case.scaling_n, float("inf"))
    for _ in range(max(2, case.repeats)):
        for n, bound in bounds.items():
            sync(bound.device)
            start = clock()
            bound.trainer.run_epoch(n, bound.take)
            best[n] = min(best[n], _synced(bound.device) - start)
    rows = [{"n": n, "epoch_s": t, "us_per_sample": t / n * 1e6} for n, t in best.items()]
    base = rows[0]["us_per_sample"]
    for row in rows:
        row["relative_cost_per_sample"] = row["us_per_sample"] / base
    return rows


# ---------------------------------------------------------------------------- memory


def _proc_status(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def current_rss() -> int:
    """Resident set size now, in bytes (off Linux: the peak so far)."""
    rss = _proc_status("VmRSS")
    return rss if rss is not None else peak_rss()


def reset_peak_rss() -> None:
    """Restart the peak RSS from the current RSS (Linux; elsewhere a no-op).

    Needed because ``ru_maxrss`` survives ``fork`` + ``exec``: a child's peak starts at
    its parent's RSS at the fork, so a fresh subprocess alone does not give a clean
    peak.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss() -> int:
    """Peak resident set size since the last :func:`reset_peak_rss`, in bytes."""
    peak = _proc_status("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def probe_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS rise of ``transform`` or ``fit`` over the RSS after the data is made.

    Runs in a fresh process (``--probe``), after a small warm-up call that loads torch's
    lazy modules and kernels, with the peak reset just before the measured call.
    """
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    X = make_data(spec["kind"], spec["n"], tuple(spec["sample_shape"]), seed=7)
    if spec["what"] == "transform":
        encoder = torch.load(spec["model"], weights_only=False)
        encoder.transform(X[:1024])
        before = current_rss()
        reset_peak_rss()
        out = encoder.transform(X)
        rise = peak_rss() - before
        return {"rss_rise_bytes": rise, "output_bytes": out.nbytes, "input_bytes": X.nbytes}
    params = dict(spec["params"], max_iter=1)
    if spec["kind"] == "tabular":
        params.update(hidden_layer_sizes=(32,), n_components=16, projection_dim=16)
    else:  # a linear map: the data path, not the network, is measured
        flat = int(np.prod(spec["sample_shape"]))
        params.update(encoder=nn.Sequential(nn.Flatten(), nn.Linear(flat, 16)))
        params.update(projection_dim=16)
    ACTEncoder(**params).fit(X[:512])
    before = current_rss()
    reset_peak_rss()
    ACTEncoder(**params).fit(X)
    rise = peak_rss() - before
    return {
        "rss_rise_bytes": rise,
        "input_bytes": X.nbytes,
        "float32_copy_bytes": X.size * 4,
        "float64_copy_bytes": X.size * 8,
    }


def run_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`probe_memory` in a fresh Python so that its peak RSS means something."""
    result = subprocess.run(
        [sys.executable, __file__, "--probe", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    if result.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_memory(case: Case, encoder: ACTEncoder) -> dict[str, Any]:
    """Transform and fit memory probes of ``case`` at ``case.memory_n`` samples."""
    params = {k: v for k, v in case.params.items() if k != "encoder"}
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "encoder.pt")
        torch.save(encoder, model)
        base = {"kind": case.kind, "n": case.memory_n, "sample_shape": case.sample_shape}
        transform = run_probe({**base, "what": "transform", "model": model})
        fit = run_probe({**base, "what": "fit", "params": params})
    transform["rise_over_output"] = transform["rss_rise_bytes"] / transform["output_bytes"]
    fit["rise_over_float64_copy"] = fit["rss_rise_bytes"] / fit["float64_copy_bytes"]
    return {"n": case.memory_n, "transform": transform, "fit": fit}


# ---------------------------------------------------------------------------- a case


def run_case(case: Case, workers: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Every measurement of one case.

    The throughputs of fit, the bare step and the conventional pipeline come from one
    fit whose epochs alternate with chunks of the other two (:func:`measure_paired`).
    """
    X = make_data(case.kind, case.n_train, case.sample_shape)
    log(f"[{case.name}] warm-up fit (torch's lazy imports and kernels)")
    fit_seconds(case, X[: 2 * case.params["batch_size"]], 1)
    # A 1-epoch fit on X gives the modules, optimiser and criterion that the bare step
    # and the conventional pipeline train (fit's own, bound to X as fit binds it).
    first = fit_seconds(case, X, 1)[1]
    bound = bind(first, X)
    log(f"[{case.name}] breakdown: {case.steps} steps")
    breakdown = measure_breakdown(bound, case.steps)
    log(
        f"[{case.name}] fit of {1 + case.epochs} epochs on n={len(X)}, each epoch after "
        "the first paired with as many steps of the bare step and the conventional pipeline"
    )
    bare = Bare(bound)
    conventional = Conventional(case, first, bound, X, workers)
    paired, encoder = measure_paired(case, X, bare, conventional)
    summary = summarise_paired(paired)
    samples = summary["samples_per_s"]["fit"]
    fit = {
        "epoch_s": paired["epoch_s"],
        "first_epoch_s": paired["first_epoch_s"],
        "outside_epochs_s": paired["outside_epochs_s"],
        "samples_per_s": samples,
        "views_per_s": samples * encoder.n_views,
    }
    # The phases alternate within each step, so their shares hardly feel the load of
    # other jobs: the bare step's share of fit's step, from one loop.
    model = sum(breakdown[k] for k in ("forward", "loss", "backward", "optimizer"))
    log(f"[{case.name}] transform, memory probes")
    X_transform = make_data(case.kind, case.transform_n, case.sample_shape, seed=3)
    transform = measure_transform(encoder, X_transform, case.device)
    memory = measure_memory(case, encoder)
    scaling = []
    if case.scaling_n:
        log(f"[{case.name}] scaling: n = {case.scaling_n}")
        scaling = measure_scaling(case)
    log(f"[{case.name}] loss steps")
    width = encoder.projection_dim or encoder._n_components_out
    losses = measure_losses(case.device, bound.trainer.batch_size, (width, 512), 50)
    return {
        "case": case.name,
        "context": case.context,
        "kind": case.kind,
        "device": str(case.device),
        "data": {"n_train": case.n_train, "sample_shape": list(case.sample_shape)},
        "estimator": {
            k: (v if isinstance(v, int | float | str | None) else repr(v))
            for k, v in encoder.get_params().items()
        },
        "encoder_params": sum(p.numel() for p in encoder.encoder_.parameters()),
        "batch_size": bound.trainer.batch_size,
        "n_views": encoder.n_views,
        "dataloader_workers": workers,
        "pairs": summary["pairs"],
        "paired_seconds": paired["seconds"],
        "fit": fit,
        "breakdown_ms": breakdown,
        "bare_step_samples_per_s": summary["samples_per_s"]["bare"],
        "conventional_samples_per_s": summary["samples_per_s"]["conventional"],
        "transform_samples_per_s": transform,
        "memory": memory,
        "scaling": scaling,
        "losses": losses,
        "ratios": {
            "fit_over_bare": summary["fit_over_bare"]["median"],
            "fit_over_conventional": summary["fit_over_conventional"]["median"],
            "bare_over_conventional": summary["bare_over_conventional"]["median"],
            "fit_over_bare_within_step": model / breakdown["total"],
        },
        "ratio_quartiles": {
            k: summary[k]
            for k in ("fit_over_bare", "fit_over_conventional", "bare_over_conventional")
        },
    }


def targets(result: dict[str, Any], quick: bool) -> list[dict[str, Any]]:
    """The issue's targets that apply to one case's result, with the measured values."""
    rows: list[dict[str, Any]] = []
    if result["context"]:
        return rows

    def add(name: str, value: float, op: str, bound: float) -> None:
        met = value >= bound if op == ">=" else value <= bound
        rows.append({"target": name, "value": value, "op": op, "bound": bound, "met": met})

    ratios = result["ratios"]
    kind, device = result["kind"], result["device"]
    if kind == "tabular" and device == "cpu":
        add(
            "fit / bare step (median of paired epochs)", ratios["fit_over_bare"], ">=", 0.85
        )
        within = ratios["fit_over_bare_within_step"]
        add("fit / bare step, within-step estimate (see breakdown)", within, ">=", 0.85)
        add(
            "fit / conventional (median of paired epochs)",
            ratios["fit_over_conventional"],
            ">=",
            3.0,
        )
    if kind == "image" and device.startswith("cuda"):
        add("fit / conventional", ratios["fit_over_conventional"], ">=", 3.0)
        if "resnet18" in result["case"]:
            add("fit views/s (ResNet-18, bf16)", result["fit"]["views_per_s"], ">=", 20000)
    memory = result["memory"]
    add(
        "transform peak RSS rise / output", memory["transform"]["rise_over_output"], "<=", 2
    )
    add(
        "fit peak RSS rise / float64 copy", memory["fit"]["rise_over_float64_copy"], "<=", 1
    )
    if result["scaling"] and not quick:
        worst = max(r["relative_cost_per_sample"] for r in result["scaling"])
        add("scaling: cost per sample vs smallest n", worst, "<=", 1.25)
    act_ratio = max(r["act_over_barlow_twins"] for r in result["losses"])
    add("ACT loss step / Barlow Twins", act_ratio, "<=", 1.0)
    return rows


# ---------------------------------------------------------------------------- report


def machine(device: str) -> dict[str, Any]:
    """Where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        **versions(),
    }
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _fmt(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _iqr(quartiles: dict[str, float]) -> str:
    return f"{_fmt(quartiles['q1'])}-{_fmt(quartiles['q3'])}"


def to_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page."""
    m = report["machine"]
    lines = [
        f"# Throughput benchmark ({report['device']})",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        f"Machine: {m['platform']}; {m['cpu']}, {m['cpu_count']} CPUs"
        + (f"; GPU {m['gpu']} (CUDA {m['cuda']})" if "gpu" in m else "")
        + f"; {m['torch_threads']} torch thread(s)  ",
        f"Versions: python {m['python']}, torch {m['torch']}, skact {m['skact']}, "
        f"numpy {m['numpy']}  ",
        f"Clock: {report['clock']}. Load average at start "
        f"{report['load_average_start']}, at end {report['load_average_end']}"
        + (" (quick run: small sizes, indicative only)" if report["quick"] else ""),
        "",
    ]
    if report.get("note"):
        lines += [f"**Note:** {report['note']}", ""]
    if report["device"] == "cpu":
        lines += [
            "GPU targets (ResNet-18 on CUDA: >= 20,000 views/s in bf16, >= 3x the "
            "conventional pipeline): not measured by this run; see "
            "`throughput-cuda.md` (`--device cuda`, `benchmarks/gpu_check.sh`).",
            "",
        ]
    for r in report["results"]:
        fit, q = r["fit"], r["ratio_quartiles"]
        lines += [f"## {r['case']} on {r['device']}", ""]
        if r["context"]:
            lines += [f"*{r['context']}.*", ""]
        lines += [
            f"n = {r['data']['n_train']} samples of shape "
            f"{tuple(r['data']['sample_shape'])}; "
            f"batch {r['batch_size']}, {r['n_views']} views; encoder "
            f"{r['estimator']['encoder']} ({r['encoder_params']:,} parameters); "
            f"DataLoader workers {r['dataloader_workers']}.",
            "",
            f"Throughputs: median over the {r['pairs']} paired epochs and chunks (see the "
            "module docstring); `fit / x`: median of the per-pair ratios, with its "
            "interquartile range.",
            "",
            "| pipeline | samples/s | views/s | fit / pipeline | IQR |",
            "|---|---|---|---|---|",
            f"| skact `fit` (epochs only) | {_fmt(fit['samples_per_s'])} | "
            f"{_fmt(fit['views_per_s'])} | 1 | |",
            f"| bare step on pre-made views | {_fmt(r['bare_step_samples_per_s'])} | "
            f"{_fmt(r['bare_step_samples_per_s'] * r['n_views'])} | "
            f"{_fmt(r['ratios']['fit_over_bare'])} | {_iqr(q['fit_over_bare'])} |",
            f"| Dataset + DataLoader, per-sample augmentation | "
            f"{_fmt(r['conventional_samples_per_s'])} | "
            f"{_fmt(r['conventional_samples_per_s'] * r['n_views'])} | "
            f"{_fmt(r['ratios']['fit_over_conventional'])} | "
            f"{_iqr(q['fit_over_conventional'])} |",
            f"| `transform` | {_fmt(r['transform_samples_per_s'])} | | | |",
            "",
            "The bare step is the ceiling of any data path: with this network, fit can be "
            f"at most {_fmt(r['ratios']['bare_over_conventional'])}x the conventional "
            f"pipeline (IQR {_iqr(q['bare_over_conventional'])}).",
            "",
            f"Fit time outside its epochs (set-up before, wrap-up after): "
            f"{_fmt(fit['outside_epochs_s'])} s; first epoch {_fmt(fit['first_epoch_s'])} "
            f"s, median of the others {_fmt(fit['epoch_s'])} s.",
            "",
            "Step breakdown (ms per step, phases timed between device syncs in a loop "
            "of its own before the paired fit: the machine's speed drifts, so compare "
            "its shares, not its total, with the throughputs above; the within-step "
            "estimate of fit / bare step is "
            "(forward + loss + backward + optimizer) / total):",
            "",
            "| " + " | ".join(r["breakdown_ms"]) + " |",
            "|" + "---|" * len(r["breakdown_ms"]),
            "| " + " | ".join(_fmt(v) for v in r["breakdown_ms"].values()) + " |",
            "",
        ]
        mem = r["memory"]
        lines += [
            f"Memory (fresh process, n = {mem['n']}): `transform` raised peak RSS by "
            f"{mem['transform']['rss_rise_bytes'] / 2**20:.1f} MiB for an output of "
            f"{mem['transform']['output_bytes'] / 2**20:.1f} MiB "
            f"({_fmt(mem['transform']['rise_over_output'])}x); `fit` (tiny network) by "
            f"{mem['fit']['rss_rise_bytes'] / 2**20:.1f} MiB for data of "
            f"{mem['fit']['input_bytes'] / 2**20:.1f} MiB, whose float64 copy would be "
            f"{mem['fit']['float64_copy_bytes'] / 2**20:.1f} MiB.",
            "",
        ]
        if r["scaling"]:
            lines += ["| n | epoch s | µs per sample | relative |", "|---|---|---|---|"]
            lines += [
                f"| {s['n']:,} | {_fmt(s['epoch_s'])} | {_fmt(s['us_per_sample'])} | "
                f"{_fmt(s['relative_cost_per_sample'])} |"
                for s in r["scaling"]
            ]
            lines.append("")
        lines += ["| loss (fwd+bwd) | n | d | ACT ms | Barlow Twins ms | ratio |"]
        lines += ["|---|---|---|---|---|---|"]
        lines += [
            f"| | {x['n']} | {x['d']} | {_fmt(x['act_ms'])} | "
            f"{_fmt(x['barlow_twins_ms'])} | {_fmt(x['act_over_barlow_twins'])} |"
            for x in r["losses"]
        ]
        lines.append("")
        if r["targets"]:
            lines += ["| target | measured | bound | met |", "|---|---|---|---|"]
        lines += [
            f"| {t['target']} | {_fmt(t['value'])} | {t['op']} {_fmt(t['bound'])} | "
            f"{'yes' if t['met'] else '**no**'} |"
            for t in r["targets"]
        ]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, run the cases, print and save the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU: 1)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers")
    parser.add_argument("--cases", nargs="*", default=None, help="case names to run")
    parser.add_argument(
        "--clock",
        choices=("auto", "cpu", "wall"),
        default="auto",
        help="cpu: this process's CPU time (robust to other load; meaningful with 1 "
        "thread and no DataLoader workers); auto: cpu when that holds on the CPU",
    )
    parser.add_argument("--note", default="", help="a remark saved with the results")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe_memory(json.loads(args.probe))))
        return {}
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    threads = args.threads or (1 if args.device == "cpu" else torch.get_num_threads())
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # ACTEncoder's thread budget
    workers = args.workers
    if workers is None:
        workers = 0 if args.device == "cpu" else min(8, max(1, (os.cpu_count() or 2) - 2))
    use_cpu_clock = args.clock == "cpu" or (
        args.clock == "auto" and args.device == "cpu" and threads == 1 and workers == 0
    )
    global clock
    clock = time.process_time if use_cpu_clock else time.perf_counter
    cases = make_cases(args.device, args.quick)
    if args.cases:
        cases = [c for c in cases if c.name in args.cases]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report: dict[str, Any] = {
        "device": args.device,
        "quick": args.quick,
        "note": args.note,
        "command": " ".join(["python", *sys.argv]) if argv is None else " ".join(argv),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "clock": "process CPU time" if use_cpu_clock else "wall time",
        "load_average_start": load_average(),
        "machine": machine(args.device),
        "results": [],
    }
    for case in cases:
        result = run_case(case, workers, log)
        result["targets"] = targets(result, args.quick)
        report["results"].append(result)
    report["load_average_end"] = load_average()
    markdown = to_markdown(report)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"throughput-{args.device}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown + "\n")
    log(f"saved {stem}.json and {stem}.md")
    return report


if __name__ == "__main__":
    main()
