"""scikit-learn's estimator checks for skact's estimators."""

from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from skact import FineTunedClassifier, TransferClassifier

from _small import small_encoder

#: Checks TransferClassifier fails by design, with the reason.
TRANSFER_EXPECTED_FAILURES = {
    "check_classifiers_classes": (
        "the check's binary labels are -1 and 1, and -1 marks an unlabeled row in "
        "scikit-learn's semi-supervised convention, so one class is left (scikit-learn "
        "exempts its own semi-supervised classifiers from these labels by name)"
    ),
}


def _expected_failures(estimator):
    if isinstance(estimator, TransferClassifier | FineTunedClassifier):
        return TRANSFER_EXPECTED_FAILURES
    return {}


@parametrize_with_checks(
    [
        small_encoder(n_components=4),
        TransferClassifier(small_encoder(n_components=4), LogisticRegression()),
        FineTunedClassifier(
            small_encoder(n_components=4),
            max_iter=10,
            head_learning_rate=0.1,
            random_state=0,
        ),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
