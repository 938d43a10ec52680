"""Image training throughput on the CPU: skact's step against its bound and a DataLoader.

For each configuration of the grid (stored image size x network x torch threads x
variant), on one network, one batch and one precision shared by the three sides:

- ``skact``: what ``fit`` does per step: the batch indexed from the stored uint8 images,
  the adapter's views, forward, loss, backward and Adam (``Trainer.training_step`` of
  the trainer a fit builds, see ``bench_throughput.bind``);
- ``bare``: the same forward, loss, backward and Adam on views made in advance: the
  bound of any data path;
- ``pipeline``: the conventional pipeline, torchvision-style per-sample transforms
  (colour jitter, grayscale, random resized crop, flip, normalise, written with PIL and
  numpy since torchvision's wheel here is a CUDA build) in a ``Dataset`` batched by a
  ``DataLoader``, then the same step as ``bare``.

Images/s counts images (each seen in ``n_views`` views). The three sides run in turn,
``--steps`` steps each per round, their order rotating between rounds; each ratio is
the median over the rounds of the per-round ratio (adjacent chunks share the machine's
state). Times are wall time.

Variants (``--variants``): ``+``-joined tokens, ``float32`` or ``bf16`` (``precision=
"bfloat16"``: bf16 autocast), ``channels_last`` (the network and its input in that
memory format; without it, channels-first), ``compile`` (the encoder through
``torch.compile``). A compiled variant also reports its compile time (its first steps'
extra time), the time it saves per step against the same variant uncompiled, and
whether a default fit of ``--fit-images`` images (``max_iter`` and ``batch_size``
"auto") pays it back. ``mlp`` (``--networks mlp``) measures the tabular MLP on 64
float32 features (SCARF views; a per-row numpy Dataset as the pipeline) for the same
precision question; its memory format does not apply.

Stored images larger than 32 px are viewed at 32 px on the CPU, as a default fit does
(``skact._auto.image_view_size``); the pipeline crops to the same view size.

Results are printed and saved as ``throughput-images-cpu.json`` and ``.md`` in
``--out`` (default ``benchmarks/results``), with the command, machine (CPU model and
its bf16 / AMX flags), torch version, date and load average.

Usage::

    python benchmarks/bench_image_throughput.py                 # the whole grid
    python benchmarks/bench_image_throughput.py --quick         # a smoke run
    python benchmarks/bench_image_throughput.py --sizes 32 --networks convnet \\
        --threads 2 --variants float32 bf16+channels_last --steps 8
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from bench_throughput import (
    Bare,
    Bound,
    PILAugmentDataset,
    RowCorruptionDataset,
    _fmt,
    adapter_input,
    bind,
    load_average,
    machine,
    make_data,
)
from torch import Tensor
from torch.utils.data import DataLoader

from skact import ACTEncoder, _auto

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (32, 64)
NETWORKS = ("convnet", "resnet18")
THREADS = (1, 2)
VARIANTS = (
    "float32",
    "channels_last",
    "bf16",
    "bf16+channels_last",
    "channels_last+compile",
    "bf16+channels_last+compile",
)
TOKENS = ("float32", "bf16", "channels_last", "compile")
#: Features of the MLP's table.
TABLE_FEATURES = 64


# ------------------------------------------------------------------------ variants


@dataclass(frozen=True)
class Variant:
    """How one configuration computes."""

    name: str
    precision: str  # ACTEncoder's: "float32" or "bfloat16"
    channels_last: bool
    compile: bool

    @property
    def base(self) -> str:
        """The same variant uncompiled (what a compiled one is compared with)."""
        return "+".join(t for t in self.name.split("+") if t != "compile")


def parse_variant(name: str) -> Variant:
    """``"bf16+channels_last"`` -> Variant; tokens in any order, each at most once."""
    tokens = name.split("+")
    unknown = [t for t in tokens if t not in TOKENS]
    if unknown or len(set(tokens)) != len(tokens) or {"float32", "bf16"} <= set(tokens):
        raise ValueError(
            f"variant {name!r}: join distinct tokens of {TOKENS} with '+' "
            "(float32 and bf16 exclude each other)"
        )
    return Variant(
        name,
        "bfloat16" if "bf16" in tokens else "float32",
        "channels_last" in tokens,
        "compile" in tokens,
    )


@contextlib.contextmanager
def memory_format(channels_last: bool) -> Iterator[None]:
    """Image networks and views channels_last on the CPU, or channels-first (the rule
    of ``skact._auto.image_channels_last``, patched for the block)."""
    devices = ("cuda", "cpu") if channels_last else ("cuda",)
    with mock.patch.object(_auto, "CHANNELS_LAST_DEVICES", devices):
        yield


# ------------------------------------------------------------------------ one setup


@dataclass
class Setup:
    """The three sides of one configuration, on one trainer (network, batch, precision)."""

    network: str
    size: int
    variant: Variant
    bound: Bound
    bare: Bare
    loader: Iterator[list[Tensor]]
    batches: Iterator[np.ndarray]
    compile_s: float | None

    @property
    def batch_size(self) -> int:
        return self.bound.trainer.batch_size

    def skact_steps(self, steps: int) -> float:
        """Seconds of ``steps`` of fit's step: index the stored batch, then
        ``Trainer.training_step`` (views, forward, loss, backward, Adam)."""
        start = time.perf_counter()
        for _ in range(steps):
            idx = torch.from_numpy(next(self.batches))
            self.bound.trainer.training_step(self.bound.data.index_select(0, idx))
        return time.perf_counter() - start

    def bare_steps(self, steps: int) -> float:
        return self.bare.chunk(steps)[0]

    def pipeline_input(self) -> Tensor:
        x = torch.cat(next(self.loader))
        if self.variant.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def pipeline_steps(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self.bound.step(self.pipeline_input())
        return time.perf_counter() - start


def _forever(loader: DataLoader) -> Iterator[list[Tensor]]:
    while True:
        yield from loader


def data_for(network: str, size: int, n: int) -> np.ndarray:
    """Synthetic uint8 RGB images of ``size`` px, or a float32 table for the MLP."""
    if network == "mlp":
        return make_data("tabular", n, (TABLE_FEATURES,))
    return make_data("image", n, (size, size, 3))


def make_setup(
    network: str, size: int, variant: Variant, batch_size: int, n_images: int
) -> Setup:
    """Fit one epoch to build the estimator, then the three sides on its trainer.

    Call inside :func:`memory_format` of the variant: the network is placed, and each
    view laid out, by the rule in force.
    """
    X = data_for(network, size, n_images)
    encoder = ACTEncoder(
        encoder=network, batch_size=batch_size, max_iter=1, precision=variant.precision,
        device="cpu", random_state=0,
    )  # fmt: skip
    encoder.fit(X)
    compile_s = None
    if variant.compile:
        # The trainer's network. torch.compile is typed to return a callable, but on a
        # module it returns an OptimizedModule (an nn.Module): hence the ignore.
        encoder.encoder_ = torch.compile(encoder.encoder_)  # type: ignore[assignment]
    bound = bind(encoder, X)
    if variant.compile:
        start = time.perf_counter()
        bare = Bare(bound)  # its two warm-up steps compile forward and backward
        compile_s = time.perf_counter() - start
    else:
        bare = Bare(bound)
    adapter: Any = encoder._adapter
    if network == "mlp":
        rows = adapter.to_storage(adapter_input(encoder, X)).numpy()
        rate = adapter.augment.corruption_rate
        dataset: Any = RowCorruptionDataset(rows, encoder.n_views, rate, 0.0)
    else:
        dataset = ViewSizedPILDataset(
            X, encoder.n_views, adapter.mean, adapter.std, adapter.input_shape[1:]
        )
    loader = DataLoader(dataset, batch_size=bound.trainer.batch_size, shuffle=True,
                        drop_last=True, num_workers=0)  # fmt: skip
    setup = Setup(network, size, variant, bound, bare, _forever(loader),
                  bound.batches(), compile_s)  # fmt: skip
    setup.skact_steps(1)  # warm-up of each side
    setup.pipeline_steps(1)
    return setup


class ViewSizedPILDataset(PILAugmentDataset):
    """``PILAugmentDataset`` whose random resized crop resizes to the view size skact's
    network sees (32 px on the CPU for larger stored images), as
    ``RandomResizedCrop(view)`` would."""

    def __init__(
        self,
        images: np.ndarray,
        n_views: int,
        mean: np.ndarray,
        std: np.ndarray,
        view: tuple[int, int],
    ) -> None:
        super().__init__(images, n_views, mean, std)
        self.view_hw = (int(view[0]), int(view[1]))

    def view(self, image: Any) -> np.ndarray:
        from PIL import Image

        pixels = super().view(image)  # crop resized to the stored size
        if pixels.shape[1:] == self.view_hw:
            return pixels
        # Resizing the normalised crop once more would cost a second resize; resize the
        # crop to the view instead: the same PIL work a user's RandomResizedCrop does.
        chw = np.clip(pixels * self.std + self.mean, 0, 1)
        rgb = Image.fromarray((chw.transpose(1, 2, 0) * 255).astype(np.uint8))
        rgb = rgb.resize(self.view_hw[::-1], Image.Resampling.BICUBIC)
        out = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return (out - self.mean) / self.std


# ------------------------------------------------------------------------ measurement


def _median_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of (throughput a / throughput b) = (seconds b / seconds a)."""
    return statistics.median(tb / ta for ta, tb in zip(a, b, strict=True))


def measure(setup: Setup, steps: int, rounds: int) -> dict[str, Any]:
    """Images/s of the three sides and their per-round ratios."""
    sides = {
        "skact": setup.skact_steps,
        "bare": setup.bare_steps,
        "pipeline": setup.pipeline_steps,
    }
    seconds: dict[str, list[float]] = {k: [] for k in sides}
    order = list(sides)
    for r in range(rounds):
        for name in order[r % 3 :] + order[: r % 3]:
            seconds[name].append(sides[name](steps))
    images = steps * setup.batch_size
    return {
        "steps": steps,
        "rounds": rounds,
        "seconds": seconds,
        "images_per_s": {k: images / statistics.median(v) for k, v in seconds.items()},
        "ratios": {
            "skact_over_bare": _median_ratio(seconds["skact"], seconds["bare"]),
            "skact_over_pipeline": _median_ratio(seconds["skact"], seconds["pipeline"]),
            "bare_over_pipeline": _median_ratio(seconds["bare"], seconds["pipeline"]),
        },
    }


def default_fit_steps(network: str, size: int, n_images: int) -> int:
    """Optimiser steps of a default CPU fit (``max_iter`` and ``batch_size`` "auto")."""
    if network == "mlp":
        auto = _auto.table_settings(n_images)
    else:
        view = _auto.image_view_size("cpu", (size, size)) or (size, size)
        auto = _auto.image_settings("cpu", view, n_images)
    return auto.max_iter * math.ceil(n_images / min(auto.batch_size, n_images))


def payback(rows: list[dict[str, Any]], fit_images: int) -> None:
    """Add to each compiled row its saving per step and whether a default fit repays
    its compile time (against the row of its base variant, same size/network/threads)."""
    key = ("size", "network", "threads")
    by_variant = {(*(r[k] for k in key), r["variant"]): r for r in rows}
    for row in rows:
        if row["compile_s"] is None:
            continue
        base = by_variant.get((*(row[k] for k in key), row["base_variant"]))
        steps = default_fit_steps(row["network"], row["size"], fit_images)
        info: dict[str, Any] = {
            "default_fit_images": fit_images,
            "default_fit_steps": steps,
        }
        if base is not None:
            per_image = 1 / row["images_per_s"]["skact"] - 1 / base["images_per_s"]["skact"]
            saved = -per_image * row["batch_size"]
            info["saved_s_per_step"] = saved
            info["paid_back"] = saved > 0 and saved * steps > row["compile_s"]
        row["payback"] = info


# ------------------------------------------------------------------------ report


def cpu_flags_of_interest() -> dict[str, bool]:
    """The flags the precision rule reads, and AMX's, as this machine reports them."""
    flags = _auto.cpu_flags()
    names = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")
    return {name: name in flags for name in names}


def to_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page."""
    m = report["machine"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["cpu_flags"].items())
    lines = [
        "# Image throughput benchmark (cpu)",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        f"Machine: {m['platform']}; {m['cpu']}, {m['cpu_count']} CPUs; flags: {flags}  ",
        f"Versions: python {m['python']}, torch {m['torch']}, skact {m['skact']}, "
        f"numpy {m['numpy']}  ",
        f"Clock: wall time. Load average at start {report['load_average_start']}, at "
        f"end {report['load_average_end']}"
        + (" (quick run: small sizes, indicative only)" if report["quick"] else ""),
        "",
        f"Batch {report['batch_size']} images x {report['n_views']} views; "
        f"{report['rounds']} rounds of {report['steps']} steps per side; ratios are "
        "medians of the per-round ratios. Stored images above 32 px are viewed at 32 px "
        "(the CPU default); `view` is what the network sees.",
        "",
        "| size | view | network | threads | variant | skact img/s | bare img/s | "
        "pipeline img/s | skact / bare | skact / pipeline |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        ips, ratio = r["images_per_s"], r["ratios"]
        view = "x".join(map(str, r["view"])) if r["view"] else "-"
        lines.append(
            f"| {r['size'] or '-'} | {view} | {r['network']} | {r['threads']} | "
            f"{r['variant']} | {_fmt(ips['skact'])} | {_fmt(ips['bare'])} | "
            f"{_fmt(ips['pipeline'])} | {_fmt(ratio['skact_over_bare'])} | "
            f"{_fmt(ratio['skact_over_pipeline'])} |"
        )
    compiled = [r for r in report["results"] if r["compile_s"] is not None]
    if compiled:
        lines += [
            "",
            "`torch.compile`: compile time (the first two steps' time), the time saved "
            "per step against the same variant uncompiled, and whether a default fit "
            "repays it.",
            "",
            "| size | network | threads | variant | compile s | saved s / step | "
            "default fit steps | paid back |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in compiled:
            p = r["payback"]
            saved = p.get("saved_s_per_step")
            paid = p.get("paid_back")
            lines.append(
                f"| {r['size'] or '-'} | {r['network']} | {r['threads']} | {r['variant']} "
                f"| {_fmt(r['compile_s'])} | "
                f"{'-' if saved is None else _fmt(saved)} | {p['default_fit_steps']} | "
                f"{'-' if paid is None else ('yes' if paid else 'no')} |"
            )
    if report.get("note"):
        lines += ["", f"**Note:** {report['note']}"]
    return "\n".join(lines)


def view_hw(setup: Setup) -> tuple[int, ...]:
    """Height and width of the views the network sees."""
    return tuple(setup.bare.premade[0].shape[2:])


def run_grid(
    args: argparse.Namespace, log: Any = lambda message: None
) -> list[dict[str, Any]]:
    """Measure every configuration of the grid the arguments select."""
    variants = [parse_variant(v) for v in args.variants]
    rows = []
    for network in args.networks:
        sizes = [0] if network == "mlp" else args.sizes
        for size in sizes:
            for threads in args.threads:
                torch.set_num_threads(threads)
                os.environ["OMP_NUM_THREADS"] = str(threads)  # ACTEncoder's budget
                for variant in variants:
                    if network == "mlp" and variant.channels_last:
                        continue  # no memory format for a table
                    data = f"{size} px" if size else "table"
                    log(f"{network}, {data}, {threads} thread(s), {variant.name}")
                    with memory_format(variant.channels_last):
                        setup = make_setup(
                            network, size, variant, args.batch_size, args.images
                        )
                        result = measure(setup, args.steps, args.rounds)
                    trainer = setup.bound.trainer
                    rows.append({
                        "size": size,
                        "view": [] if network == "mlp" else list(view_hw(setup)),
                        "network": network,
                        "threads": threads,
                        "variant": variant.name,
                        "base_variant": variant.base,
                        "precision": variant.precision,
                        "autocast_dtype": str(trainer.amp_dtype),
                        "channels_last": variant.channels_last,
                        "compile": variant.compile,
                        "compile_s": setup.compile_s,
                        "batch_size": setup.batch_size,
                        "n_views": trainer.n_views,
                        **result,
                    })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, run the grid, print and save the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument(
        "--networks", nargs="+", default=list(NETWORKS),
        choices=("convnet", "resnet18", "mlp"),
    )  # fmt: skip
    parser.add_argument("--threads", type=int, nargs="+", default=list(THREADS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=None, help="steps per side a round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each side")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step")
    parser.add_argument("--images", type=int, default=None, help="stored images")
    parser.add_argument(
        "--fit-images", type=int, default=2000,
        help="images of the default fit that must repay torch.compile",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--note", default="", help="a remark saved with the results")
    args = parser.parse_args(argv)
    for name in args.variants:
        try:
            parse_variant(name)
        except ValueError as exc:
            parser.error(str(exc))
    quick = args.quick
    args.batch_size = args.batch_size or (16 if quick else 256)
    args.steps = args.steps or (1 if quick else 4)
    args.rounds = args.rounds or (2 if quick else 5)
    args.images = args.images or max(4 * args.batch_size, 64)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report: dict[str, Any] = {
        "device": "cpu",
        "quick": quick,
        "note": args.note,
        "command": " ".join(["python", *sys.argv]) if argv is None else " ".join(argv),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average_start": load_average(),
        "machine": {**machine("cpu"), "cpu_flags": cpu_flags_of_interest()},
        "batch_size": args.batch_size,
        "n_views": 2,
        "steps": args.steps,
        "rounds": args.rounds,
        "images": args.images,
        "results": [],
    }
    report["results"] = run_grid(args, log)
    payback(report["results"], args.fit_images)
    report["load_average_end"] = load_average()
    markdown = to_markdown(report)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "throughput-images-cpu"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown + "\n")
    log(f"saved {stem}.json and {stem}.md")
    return report


if __name__ == "__main__":
    main()
