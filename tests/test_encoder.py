"""ACTEncoder on tables: the scikit-learn contract, determinism, persistence, pipelines."""

import io
import pickle
import re

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_set_output_transform,
    check_transformer_get_feature_names_out,
)

from skact import ACTEncoder
from skact.evaluation import few_shot_score

from _small import small_encoder


def small(**params):
    sizes = dict(n_components=6, hidden_layer_sizes=(32,), projection_dim=8)
    return small_encoder(**{**sizes, "max_iter": 3, "batch_size": 32, **params})


@pytest.fixture(scope="module")
def table():
    X, y = make_classification(n_samples=120, n_features=10, random_state=0)
    return X, y


def test_transform_shape_dtype_and_names(table):
    X, _ = table
    enc = small().fit(X)
    Z = enc.transform(X)
    assert Z.shape == (120, 6)
    assert Z.dtype == np.float32
    assert np.isfinite(Z).all()
    assert list(enc.get_feature_names_out()) == [f"actencoder{i}" for i in range(6)]
    assert enc.n_features_in_ == 10
    assert enc.n_iter_ == 3 and len(enc.loss_curve_) == 3
    assert enc.device_ == torch.device("cpu")
    assert enc.projector_ is not None and not enc.encoder_.training


def test_default_width_is_encoder_natural_width(table):
    X, _ = table
    enc = ACTEncoder(max_iter=1, random_state=0, hidden_layer_sizes=(16,)).fit(X)
    assert enc.transform(X).shape == (120, 64)


def test_same_seed_same_output_different_seed_different_output(table):
    X, _ = table
    a = small(random_state=1).fit(X).transform(X)
    b = small(random_state=1).fit(X).transform(X)
    c = small(random_state=2).fit(X).transform(X)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.abs(a - c).max() > 1e-2


def test_fit_does_not_touch_global_torch_rng(table):
    X, _ = table
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    small().fit(X)
    assert torch.equal(torch.rand(3), expected)


def test_training_reduces_the_loss():
    X = load_digits().data
    enc = small(max_iter=15, hidden_layer_sizes=(64,), batch_size=128).fit(X)
    assert np.mean(enc.loss_curve_[-3:]) < enc.loss_curve_[0]


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_pickle_round_trip_gives_identical_transform(table, dump, tmp_path):
    X, _ = table
    enc = small().fit(X)
    if dump == "pickle":
        restored = pickle.loads(pickle.dumps(enc))
    else:
        joblib.dump(enc, tmp_path / "m.joblib")
        restored = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_array_equal(restored.transform(X), enc.transform(X))
    # Training state travels too: warm-started refits continue identically.
    enc.set_params(warm_start=True, max_iter=1).fit(X)
    restored.set_params(warm_start=True, max_iter=1).fit(X)
    np.testing.assert_allclose(restored.transform(X), enc.transform(X), atol=1e-6)


def test_model_saved_on_cuda_loads_on_cpu_only_machine(table, monkeypatch):
    """Storage tagged 'cuda:0' in the pickle is mapped to the CPU on load."""
    X, _ = table
    enc = small().fit(X)
    expected = enc.transform(X)
    enc.device_ = torch.device("cuda", 0)
    enc._generator_state = torch.zeros(16, dtype=torch.uint8)  # a CUDA (Philox) state
    real_tag = torch.serialization.location_tag
    # Make torch.save write every storage as if it lived on cuda:0.
    monkeypatch.setattr(
        torch.serialization,
        "location_tag",
        lambda storage: "cuda:0" if real_tag(storage) == "cpu" else real_tag(storage),
    )
    blob = pickle.dumps(enc)
    payload = enc.__getstate__()["_torch_payload"]
    monkeypatch.undo()
    # Without remapping, such storage cannot be loaded on this machine...
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(io.BytesIO(payload), weights_only=False)
    # ...but the estimator remaps it to the CPU.
    restored = pickle.loads(blob)
    assert restored.device_ == torch.device("cpu")
    assert next(restored.encoder_.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(restored.transform(X), expected)
    # The CUDA generator state cannot drive a CPU generator: it is reseeded from the
    # model's own random state, so training goes on, the same way on every unpickling.
    again = pickle.loads(blob)
    restored.partial_fit(X)
    again.partial_fit(X)
    np.testing.assert_array_equal(restored.transform(X), again.transform(X))


def test_clone_is_unfitted_copy(table):
    X, _ = table
    enc = small().fit(X)
    fresh = clone(enc)
    assert fresh.get_params() == enc.get_params()
    with pytest.raises(NotFittedError):
        fresh.transform(X)


def test_partial_fit_creates_model_then_adds_one_epoch(table):
    X, _ = table
    enc = small()
    enc.partial_fit(X[:60])
    assert enc.n_iter_ == 1
    before = [p.detach().clone() for p in enc.encoder_.parameters()]
    enc.partial_fit(X[60:])
    assert enc.n_iter_ == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, enc.encoder_.parameters()))
    with pytest.raises(ValueError, match="features"):
        enc.partial_fit(X[:, :5])


def test_warm_start_continues_training(table):
    X, _ = table
    enc = small(warm_start=True, max_iter=2).fit(X)
    enc.fit(X)
    assert enc.n_iter_ == 4 and len(enc.loss_curve_) == 4
    cold = small(warm_start=False, max_iter=2).fit(X)
    cold.fit(X)
    assert cold.n_iter_ == 2


def test_early_stopping_holds_out_data_and_stops(table):
    X, _ = table
    enc = small(early_stopping=True, max_iter=50, n_iter_no_change=2, tol=1e6).fit(X)
    # With an impossible tolerance only the first epoch counts as an improvement, so
    # training stops n_iter_no_change epochs later.
    assert enc.n_iter_ == 3
    assert len(enc.validation_loss_curve_) == 3
    assert all(np.isfinite(enc.validation_loss_curve_))


@pytest.mark.parametrize(
    ("max_iter", "n_iter_no_change", "epochs"),
    [(50, 2, 3), (3, 10, 3)],
    ids=["patience runs out", "max_iter runs out"],
)
def test_early_stopping_keeps_the_best_epochs_weights(
    table, monkeypatch, max_iter, n_iter_no_change, epochs
):
    """With an impossible tolerance only epoch 1 improves: its weights are the ones
    kept, whether training stops for lack of patience or because max_iter ran out."""
    from skact._training import Trainer

    X, _ = table
    states = []
    run_epoch = Trainer.run_epoch

    def recorded(self, n, take):
        loss = run_epoch(self, n, take)
        states.append({k: v.clone() for k, v in self.encoder.state_dict().items()})
        return loss

    monkeypatch.setattr(Trainer, "run_epoch", recorded)
    enc = small(
        early_stopping=True, max_iter=max_iter, n_iter_no_change=n_iter_no_change, tol=1e6
    ).fit(X)
    assert enc.n_iter_ == epochs == len(states)
    final = enc.encoder_.state_dict()
    assert all(torch.equal(final[k], states[0][k]) for k in final)
    assert not all(torch.equal(final[k], states[-1][k]) for k in final)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"hidden_layer_sizes": (32, 32)}, "hidden_layer_sizes=(16,)"),
        ({"n_components": 7}, "n_components=4"),
        ({"projection_dim": None}, "projection_dim="),
    ],
)
@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_continuing_refuses_parameters_of_another_network(table, change, named, how):
    """warm_start and partial_fit go on with the fitted network; parameters describing
    another one are an error, not silently ignored (get_params would then describe a
    network that does not exist)."""
    X, _ = table
    enc = small(n_components=4, hidden_layer_sizes=(16,), warm_start=True).fit(X)
    before = {k: v.clone() for k, v in enc.encoder_.state_dict().items()}
    enc.set_params(**change)
    with pytest.raises(ValueError, match=f"built with {re.escape(named)}"):
        enc.fit(X) if how == "warm_start" else enc.partial_fit(X)
    assert all(torch.equal(v, enc.encoder_.state_dict()[k]) for k, v in before.items())
    enc.set_params(
        **{
            k: small(n_components=4, hidden_layer_sizes=(16,)).get_params()[k]
            for k in change
        }
    )
    enc.set_params(alpha=0.5).fit(X)  # other parameters may change
    assert enc.n_iter_ == 2 * enc.max_iter  # the refused call trained nothing


def test_loaded_model_refuses_another_network_too(table, tmp_path):
    import skact

    X, _ = table
    small(hidden_layer_sizes=(16,)).fit(X).save(tmp_path / "m.skact")
    loaded = skact.load(tmp_path / "m.skact").set_params(hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match=r"built with hidden_layer_sizes=\(16,\)"):
        loaded.partial_fit(X)


def test_validation_fraction_leaving_too_little_to_train_is_named(table):
    X, _ = table
    with pytest.raises(ValueError, match=r"validation_fraction=0.99 holds out \d+ of"):
        small(early_stopping=True, validation_fraction=0.99).fit(X)


def test_verbose_shows_progress_with_loss(table, capsys):
    X, _ = table
    small(verbose=2).fit(X)
    err = capsys.readouterr()
    text = err.err + err.out
    assert "epoch 3" in text and "loss" in text
    small(verbose=0).fit(X)
    err = capsys.readouterr()
    assert err.err == "" and err.out == ""


def test_sklearn_set_output_and_feature_name_checks():
    enc = small()
    check_set_output_transform("ACTEncoder", enc)
    check_transformer_get_feature_names_out("ACTEncoder", enc)
    check_dataframe_column_names_consistency("ACTEncoder", enc)


@pytest.mark.parametrize("lib", ["pandas", "polars"])
def test_set_output_returns_dataframe(table, lib):
    mod = pytest.importorskip(lib)
    X, _ = table
    df = mod.DataFrame({f"c{i}": X[:, i] for i in range(X.shape[1])})
    enc = small().set_output(transform=lib).fit(df)
    out = enc.transform(df)
    assert isinstance(out, mod.DataFrame)
    assert list(out.columns) == [f"actencoder{i}" for i in range(6)]
    assert list(enc.feature_names_in_) == [f"c{i}" for i in range(10)]


def test_grid_search_in_pipeline_with_two_jobs(table):
    X, y = table
    pipe = make_pipeline(small(max_iter=2), LogisticRegression(max_iter=500))
    grid = GridSearchCV(
        pipe,
        {"actencoder__alpha": [0.01, 0.1], "actencoder__n_components": [4, 8]},
        cv=2,
        n_jobs=2,
    ).fit(X, y)
    assert grid.cv_results_["mean_test_score"].shape == (4,)
    assert (
        grid.best_estimator_[0].transform(X).shape[1]
        == grid.best_params_["actencoder__n_components"]
    )


def test_frozen_encoder_few_shot_pipeline_does_not_refit(table):
    X, y = table
    enc = small().fit(X)
    weights = [p.detach().clone() for p in enc.encoder_.parameters()]
    few = np.r_[np.flatnonzero(y == 0)[:3], np.flatnonzero(y == 1)[:3]]
    clf = make_pipeline(FrozenEstimator(enc), LogisticRegression()).fit(X[few], y[few])
    assert enc.n_iter_ == 3
    assert all(torch.equal(a, b) for a, b in zip(weights, enc.encoder_.parameters()))
    assert clf.score(X, y) > 0.5


def test_digits_table_few_shot_beats_raw_pixels_by_four_points():
    """Issue 2's quality bar: 5 labels per class, mean of 10 draws, defaults."""
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    enc = ACTEncoder(random_state=0).fit(X_tr)
    act = few_shot_score(enc, X_tr, y_tr, X_te, y_te, k=5, protocols=["linear"])[0]
    raw = few_shot_score(
        StandardScaler().fit(X_tr), X_tr, y_tr, X_te, y_te, k=5, protocols=["linear"]
    )[0]
    assert act.mean >= raw.mean + 0.04, (act.mean, raw.mean)


def test_a_column_constant_up_to_rounding_standardises_to_about_zero():
    """Its std is rounding noise: dividing by 1 left values like 1e5 for a column of
    1e20s; it is divided by its size instead, so the noise stays ~1e-15."""
    from skact.adapters.table import TabularAdapter, safe_scale
    from skact.augment.tabular import TabularAugment

    X = np.array([[1e20 * (1 + 1e-15 * k), k] for k in range(12)])
    stored = TabularAdapter.fit(X, TabularAugment()).to_storage(X).numpy()
    assert np.abs(stored[:, 0]).max() < 1e-6
    assert np.abs(stored[:, 1]).max() > 1  # an ordinary column is standardised
    # exactly constant columns keep a scale of 1, as in StandardScaler; so does noise
    # on small values; an ordinary std is kept
    scales = safe_scale([0.0, 0.0, 1e-20, 2.0], [0.0, 1e20, 0.5, 3.0])
    np.testing.assert_array_equal(scales, [1, 1, 1, 2])


# ----------------------------------------------------- views of a table: one place each


def test_table_augment_is_the_views_its_shortcuts_build(table, tmp_path):
    from skact import load, resolved_settings
    from skact.augment import TabularAugment

    X, _ = table
    by_shortcuts = small(corruption_rate=0.3, noise_scale=0.1).fit(X)
    views = TabularAugment(corruption_rate=0.3, noise_scale=0.1)
    by_augment = small(augment=views).fit(X)
    np.testing.assert_array_equal(by_augment.transform(X), by_shortcuts.transform(X))
    assert by_augment.loss_curve_ == by_shortcuts.loss_curve_
    assert views == TabularAugment(0.3, 0.1)  # fit left the user's instance as it was
    # The resolved rate, "auto" included, is what the views say.
    assert resolved_settings(small(augment=views), X)["corruption_rate"] == 0.3
    auto = small(augment=TabularAugment("auto"))
    assert resolved_settings(auto, X)["corruption_rate"] == 0.2
    # Saved by value, and loaded as the same parameter.
    by_augment.save(tmp_path / "model.skact")
    loaded = load(tmp_path / "model.skact")
    assert loaded.augment == views
    np.testing.assert_array_equal(loaded.transform(X), by_augment.transform(X))


def test_grid_search_reaches_the_table_augments_corruption_rate(table):
    from skact.augment import TabularAugment

    X, y = table
    pipe = make_pipeline(
        small(augment=TabularAugment(noise_scale=0.05)), LogisticRegression(max_iter=500)
    )
    rates = [0.0, 0.6]
    grid = GridSearchCV(
        pipe, {"actencoder__augment__corruption_rate": rates}, cv=2, refit=False
    ).fit(X, y)
    assert [
        p["actencoder__augment__corruption_rate"] for p in grid.cv_results_["params"]
    ] == rates
    assert not np.isnan(grid.cv_results_["mean_test_score"]).any()
    # Each value reaches the views the fit draws: the two models differ.
    fitted = [
        clone(pipe).set_params(actencoder__augment__corruption_rate=r)[0].fit(X)
        for r in rates
    ]
    assert [f._adapter.augment.corruption_rate for f in fitted] == rates
    assert [f._adapter.augment.noise_scale for f in fitted] == [0.05, 0.05]
    assert not np.allclose(fitted[0].transform(X), fitted[1].transform(X))


def test_views_of_the_other_kind_of_input_are_refused_naming_the_fix(table):
    from skact.augment import ImageAugment, TabularAugment

    X, _ = table
    images = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8), dtype=np.uint8)
    for params, data, message in [
        ({"augment": ImageAugment()}, X, r"views of images, but X is a table: .*Tabul"),
        ({"augment": lambda x, g: x}, X, r"views of images, but X is a table"),
        (
            {"augment": TabularAugment(0.3), "corruption_rate": 0.1},
            X,
            r"corruption_rate=0.1 and augment=TabularAugment\(corruption_rate=0.3",
        ),
        ({"augment": TabularAugment()}, images, "views of table rows, but X holds ima"),
        ({"corruption_rate": 0.3}, images, r"corruption_rate=0\.3 sets the views of tab"),
        ({"noise_scale": 0.1}, images, r"noise_scale=0\.1 sets the views of table rows"),
    ]:
        enc = small(**params)
        with pytest.raises(ValueError, match=message):
            enc.fit(data)
        assert not hasattr(enc, "encoder_")


def test_mixed_table_takes_its_views_from_augment_too():
    import pandas as pd

    from skact import resolved_settings
    from skact.augment import TabularAugment

    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"x": rng.normal(size=60), "colour": rng.choice(["red", "blue"], size=60)}
    )
    auto = small(augment=TabularAugment("auto", 0.1))
    assert resolved_settings(auto, df)["corruption_rate"] == 0.1  # categorical: 0.1
    by_augment = small(augment=TabularAugment(0.25, 0.1)).fit(df)
    by_shortcuts = small(corruption_rate=0.25, noise_scale=0.1).fit(df)
    np.testing.assert_array_equal(by_augment.transform(df), by_shortcuts.transform(df))
