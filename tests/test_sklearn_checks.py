"""scikit-learn's estimator checks for ACTEncoder."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skact import ACTEncoder


def _small_encoder():
    return ACTEncoder(
        n_components=4,
        hidden_layer_sizes=(8,),
        projection_dim=4,
        max_iter=2,
        batch_size=16,
        random_state=0,
        device="cpu",
    )


@parametrize_with_checks([_small_encoder()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
