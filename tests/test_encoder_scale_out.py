"""Scaling out on existing engines: parallel grid search and data larger than memory.

The dask tests need the ``distributed`` extra (``pip install skact[distributed]``) and
are skipped, with that reason, without it.
"""

from __future__ import annotations

import tracemalloc

import joblib
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline

from skact import ACTEncoder

from _small import small_encoder

EXTRA = "needs the 'distributed' extra: pip install skact[distributed]"


class ThreadRecorder(ACTEncoder):
    """ACTEncoder that records the torch intra-op threads in force while it trains."""

    def _train(self, *args, **kwargs):
        self.threads_seen_ = torch.get_num_threads()
        super()._train(*args, **kwargs)


def _small(cls=ACTEncoder, **params):
    return small_encoder(cls, **{"hidden_layer_sizes": (16,), "batch_size": 64, **params})


def _labelled(n=160):
    X = np.random.default_rng(0).normal(size=(n, 6)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def _memmap(tmp_path, n, n_features=64):
    path = tmp_path / "X.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, n_features))
    rng = np.random.default_rng(0)
    for start in range(0, n, 4096):
        stop = min(n, start + 4096)
        mm[start:stop] = rng.normal(size=(stop - start, n_features))
    mm.flush()
    del mm
    return np.load(path, mmap_mode="r")


# ---------------------------------------------------------------------- grid search


def test_parallel_cross_validation_does_not_oversubscribe(monkeypatch):
    """joblib's process workers each get cores // n_jobs threads, and the scores equal
    those of a sequential run with as many threads."""
    X, y = _labelled()
    threads_before = torch.get_num_threads()
    result = cross_validate(
        make_pipeline(_small(ThreadRecorder), LogisticRegression()),
        X,
        y,
        cv=2,
        n_jobs=2,
        return_estimator=True,
    )
    per_worker = max(1, joblib.cpu_count() // 2)
    assert [pipe[0].threads_seen_ for pipe in result["estimator"]] == [per_worker] * 2
    assert torch.get_num_threads() == threads_before

    monkeypatch.setenv("OMP_NUM_THREADS", str(per_worker))
    sequential = cross_validate(
        make_pipeline(_small(ThreadRecorder), LogisticRegression()),
        X,
        y,
        cv=2,
        n_jobs=1,
        return_estimator=True,
    )
    assert [pipe[0].threads_seen_ for pipe in sequential["estimator"]] == [per_worker] * 2
    np.testing.assert_array_equal(result["test_score"], sequential["test_score"])


def test_grid_search_on_dask_cluster(monkeypatch):
    """GridSearchCV on a dask LocalCluster through joblib's "dask" backend gives the
    scores of the sequential search with one thread per fit."""
    distributed = pytest.importorskip("dask.distributed", reason=EXTRA)
    X, y = _labelled()
    grid = {"actencoder__alpha": [0.05, 0.2]}
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster), joblib.parallel_backend("dask"):
        search = GridSearchCV(
            make_pipeline(_small(), LogisticRegression()), grid, cv=2, n_jobs=2, refit=False
        ).fit(X, y)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    reference = GridSearchCV(
        make_pipeline(_small(), LogisticRegression()), grid, cv=2, n_jobs=1, refit=False
    ).fit(X, y)
    np.testing.assert_array_equal(
        search.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"]
    )


# ---------------------------------------------------------------------- out of core


@pytest.fixture
def one_thread(monkeypatch):
    """One torch thread per fit: these tests are about memory, and tiny networks on two
    threads of a busy machine spend their time waiting for each other."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_transform_memmap_in_bounded_memory(tmp_path, one_thread):
    """transform streams a memmap in chunks: numpy allocates a small fraction of the
    data's size besides the output."""
    mm = _memmap(tmp_path, n=96_000)
    enc = _small(n_components=2).fit(np.asarray(mm[:500]))
    tracemalloc.start()
    try:
        out = enc.transform(mm)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (96_000, 2) and out.dtype == np.float32
    assert peak - out.nbytes < mm.nbytes / 8, (peak, mm.nbytes)
    np.testing.assert_array_equal(out[-1000:], enc.transform(np.asarray(mm[-1000:])))


def test_partial_fit_over_memmap_chunks(tmp_path, one_thread):
    """partial_fit over chunks of a memmap: memory per call follows the chunk, not the
    data, and the model equals the one trained on the same chunks held in memory."""
    mm = _memmap(tmp_path, n=16_000)
    chunk = 4_000
    streamed = _small(n_components=2)
    streamed.partial_fit(mm[:chunk])
    tracemalloc.start()
    try:
        for start in range(chunk, mm.shape[0], chunk):
            streamed.partial_fit(mm[start : start + chunk])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert streamed.n_iter_ == mm.shape[0] // chunk
    assert peak < 2 * mm[:chunk].nbytes, (peak, mm[:chunk].nbytes)

    in_memory = _small(n_components=2)
    for start in range(0, mm.shape[0], chunk):
        in_memory.partial_fit(np.array(mm[start : start + chunk]))
    np.testing.assert_array_equal(streamed.loss_curve_, in_memory.loss_curve_)
    probe = np.asarray(mm[:200])
    np.testing.assert_array_equal(streamed.transform(probe), in_memory.transform(probe))


def test_dask_ml_parallel_post_fit_transform():
    """dask-ml's ParallelPostFit maps transform over the blocks of a dask array; so does
    dask's map_blocks with the output chunks spelled out (the docs' alternative, whose
    lazy shape is right before computing)."""
    da = pytest.importorskip("dask.array", reason=EXTRA)
    wrappers = pytest.importorskip("dask_ml.wrappers", reason=EXTRA)
    X = np.random.default_rng(0).normal(size=(3_000, 8)).astype(np.float32)
    enc = _small().fit(X[:500])
    blocks = da.from_array(X, chunks=(500, 8))
    lazy = wrappers.ParallelPostFit(enc).transform(blocks)
    assert isinstance(lazy, da.Array)
    out = lazy.compute()
    assert out.shape == (3_000, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, enc.transform(X), atol=1e-6, rtol=0)

    mapped = blocks.map_blocks(
        enc.transform, chunks=(blocks.chunks[0], (3,)), dtype=np.float32
    )
    assert mapped.shape == (3_000, 3)
    np.testing.assert_allclose(mapped.compute(), out, atol=1e-6, rtol=0)
