"""scikit-learn's estimator checks for ACTEncoder."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from _small import small_encoder


@parametrize_with_checks([small_encoder(n_components=4)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
