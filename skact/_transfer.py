"""TransferClassifier: an encoder fitted on every row, a classifier on the labeled ones."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    _fit_context,
    clone,
)
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, get_tags
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from ._labels import (
    AmbiguousMinusOneWarning,
    semi_supervised_target,
    warn_if_minus_one_ambiguous,
)

__all__ = ["TransferClassifier"]


def _is_semi_supervised(classifier: Any) -> bool:
    """Whether ``classifier`` (or a pipeline's last step) is sklearn.semi_supervised's."""
    while isinstance(classifier, Pipeline):
        classifier = classifier.steps[-1][1]
    return type(classifier).__module__.startswith("sklearn.semi_supervised")


def _classifier_has(method: str) -> Callable[[TransferClassifier], bool]:
    """For ``available_if``: the classifier (fitted, else unfitted) has ``method``."""

    def check(self: TransferClassifier) -> bool:
        classifier = getattr(self, "classifier_", self.classifier)
        return hasattr(classifier, method)

    return check


class TransferClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """A classifier on learned features: the encoder learns from every row, unlabeled too.

    ``fit(X, y)`` takes ``y`` in scikit-learn's semi-supervised convention, -1 marking
    the rows without a label (skact's rule, stated in the user guide's
    :ref:`unlabeled-rows`: -1, the text ``"-1"``, NaN, None, pandas' NA and blank text
    all mark an unlabeled row). It fits a clone of ``encoder`` on all the rows of
    ``X`` (an :class:`~skact.ACTEncoder` learns from the rows alone; the labels only
    feed its monitor, ``monitor_curve_``), then a clone of ``classifier`` on the
    features of the labeled rows. A scikit-learn semi-supervised classifier
    (:class:`~sklearn.semi_supervised.SelfTrainingClassifier`,
    :class:`~sklearn.semi_supervised.LabelSpreading`,
    :class:`~sklearn.semi_supervised.LabelPropagation`) receives the features of every
    row instead, with -1 for the unlabeled ones (see ``unlabeled``).

    A pretrained encoder is used as it is, without refitting, when wrapped in
    :class:`~sklearn.frozen.FrozenEstimator`: cloning keeps it and its ``fit`` does
    nothing, so cross-validation and grid search tune the classifier alone.

    Parameters
    ----------
    encoder : transformer
        Learns the features, for example an :class:`~skact.ACTEncoder`; anything with
        ``fit`` and ``transform``. It is cloned, unless it is a
        :class:`~sklearn.frozen.FrozenEstimator`. Its ``fit`` receives ``y`` as given,
        -1 (or NaN, None, blank text) marking the unlabeled rows: an encoder that
        learns from labels must follow that rule. Its parameters are searched as
        ``encoder__<name>``.
    classifier : classifier
        Trained on the features; its parameters are searched as ``classifier__<name>``.
        ``predict_proba``, ``decision_function`` and ``predict_log_proba`` exist where it
        has them.
    unlabeled : {"auto", "drop", "pass"}, default="auto"
        What the classifier sees of the unlabeled rows. ``"drop"``: nothing, it is
        fitted on the labeled rows alone. ``"pass"``: every row's features, with -1 as
        the label of the unlabeled ones (labels that cannot be -1, such as strings and
        unsigned integers, are passed as their index in ``classes_``); for a
        semi-supervised classifier of your own.
        ``"auto"``: ``"pass"`` for the estimators of :mod:`sklearn.semi_supervised`
        (also as the last step of a pipeline), else ``"drop"``.

    Attributes
    ----------
    encoder_ : transformer
        The fitted encoder (``encoder`` itself when frozen).
    classifier_ : classifier
        The fitted classifier.
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit``.
    n_features_in_ : int
        Number of features seen in ``fit``, as the fitted encoder records it.
    feature_names_in_ : ndarray of str of shape (n_features,)
        Column names seen in ``fit``, where ``X`` had them.

    See Also
    --------
    skact.ACTEncoder : The self-supervised encoder.
    skact.evaluation.labeled_scorer : Score a grid search on the labeled rows only.
    sklearn.semi_supervised.SelfTrainingClassifier : Same convention for ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skact import ACTEncoder, TransferClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:300], y[:300].copy()
    >>> y[50:] = -1  # only the first 50 rows are labeled
    >>> model = TransferClassifier(
    ...     ACTEncoder(n_components=16, max_iter=2, random_state=0),
    ...     LogisticRegression(max_iter=1000),
    ... ).fit(X, y)
    >>> model.predict(X[:3]).shape
    (3,)
    >>> model.classes_
    array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "encoder": [HasMethods(["fit", "transform"])],
        "classifier": [HasMethods(["fit", "predict"])],
        "unlabeled": [StrOptions({"auto", "drop", "pass"})],
    }

    def __init__(self, encoder: Any, classifier: Any, *, unlabeled: str = "auto") -> None:
        self.encoder = encoder
        self.classifier = classifier
        self.unlabeled = unlabeled

    # The nested estimators validate their own parameters when they are fitted.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: Any, y: Any) -> TransferClassifier:
        """Fit the encoder on every row of ``X``, then the classifier on the features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images
            Every row, labeled or not; anything ``encoder`` accepts.
        y : array-like of shape (n_samples,)
            Labels, -1 for an unlabeled row (scikit-learn's semi-supervised
            convention). The text ``"-1"`` (what ``np.array(["cat", -1])`` holds),
            NaN, None, pandas' NA and blank text mark unlabeled rows too: the rule of
            :ref:`unlabeled-rows`. At least two classes must be labeled. A warning
            says when the -1 labels look like a class (the other labels are only 1,
            or include other negative numbers).

        Returns
        -------
        self : TransferClassifier
            The fitted estimator.
        """
        y, labeled = _labeled_target(X, y)
        self.classes_ = np.unique(y[labeled])
        self.encoder_ = _fit_encoder(self.encoder, X, y)
        features = self.encoder_.transform(X)
        self.classifier_ = clone(self.classifier)
        if self._passes_unlabeled():
            # Labels that cannot hold -1 (strings, unsigned integers) go as codes.
            self._label_codes = y.dtype.kind not in "if"
            targets = np.full(len(y), -1, dtype=int if self._label_codes else y.dtype)
            targets[labeled] = (
                np.searchsorted(self.classes_, y[labeled])
                if self._label_codes
                else y[labeled]
            )
            self.classifier_.fit(features, targets)
        else:
            self._label_codes = False
            rows = np.flatnonzero(labeled)
            self.classifier_.fit(_safe_indexing(features, rows), y[rows])
        return self

    @available_if(_classifier_has("predict"))
    def predict(self, X: Any) -> np.ndarray:
        """Predict the class of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        prediction = self._delegate("predict", X)
        return self.classes_[prediction] if self._label_codes else prediction

    @available_if(_classifier_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        return self._delegate("predict_proba", X)

    @available_if(_classifier_has("predict_log_proba"))
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of the class probabilities of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        return self._delegate("predict_log_proba", X)

    @available_if(_classifier_has("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        """The classifier's decision function on the features of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            As the classifier returns it (one column for two classes, for
            ``classes_[1]``).
        """
        return self._delegate("decision_function", X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy on the labeled rows of ``X``; unlabeled rows are left out.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images
        y : array-like of shape (n_samples,)
            Labels, -1 (or NaN, None, blank text) for an unlabeled row, as in
            ``fit``.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows.

        Returns
        -------
        float
            Accuracy over the labeled rows.
        """
        y, labeled = _check_target(X, y, need_two_classes=False)
        rows = np.flatnonzero(labeled)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)[rows]
        prediction = self.predict(_safe_indexing(X, rows))
        return float(accuracy_score(y[rows], prediction, sample_weight=sample_weight))

    @property
    def n_features_in_(self) -> int:
        """Number of features seen in ``fit`` (as the fitted encoder records it)."""
        return int(self.encoder_.n_features_in_)

    @property
    def feature_names_in_(self) -> np.ndarray:
        """Column names seen in ``fit`` (as the fitted encoder records them)."""
        return np.asarray(self.encoder_.feature_names_in_)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        encoder_tags = get_tags(self.encoder)
        classifier_tags = get_tags(self.classifier)
        tags.input_tags = encoder_tags.input_tags
        tags.non_deterministic = (
            encoder_tags.non_deterministic or classifier_tags.non_deterministic
        )
        if classifier_tags.classifier_tags is not None:
            tags.classifier_tags = classifier_tags.classifier_tags
        return tags

    def _passes_unlabeled(self) -> bool:
        if self.unlabeled == "auto":
            return _is_semi_supervised(self.classifier)
        return self.unlabeled == "pass"

    def _delegate(self, method: str, X: Any) -> np.ndarray:
        check_is_fitted(self)
        features = self.encoder_.transform(X)
        return getattr(self.classifier_, method)(features)


def _labeled_target(X: Any, y: Any) -> tuple[Any, Any]:
    """``fit``'s target of a semi-supervised classifier: warns when its -1 labels look
    like a class (before the checks: they may leave one class labeled), then
    :func:`_check_target`. Called from ``fit`` itself, so that the warning points at
    the caller's line."""
    warn_if_minus_one_ambiguous(y, stacklevel=4)  # this, fit, the wrapper, the caller
    return _check_target(X, y)


def _fit_encoder(encoder: Any, X: Any, y: Any) -> Any:
    """A clone of ``encoder`` fitted on every row of ``X`` (the -1 warning already
    said by :func:`_labeled_target`; an ACTEncoder would repeat it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AmbiguousMinusOneWarning)
        return clone(encoder).fit(X, y)


def _check_target(X: Any, y: Any, need_two_classes: bool = True) -> tuple[Any, Any]:
    """``y`` as a 1-d array and its labeled rows; errors say what to change."""
    if y is None:
        raise ValueError(
            "TransferClassifier requires y to be passed, but the target y is None; "
            "pass the labels, with -1 for the rows that have none"
        )
    y = np.asarray(y)
    if y.ndim != 1 and not (y.ndim == 2 and y.shape[1] == 1):
        raise ValueError(
            f"y should be a 1d array of labels, got an array of shape {y.shape}; "
            "TransferClassifier predicts one label per row"
        )
    y = column_or_1d(y, warn=True)
    check_consistent_length(X, y)
    y, labeled = semi_supervised_target(y)
    if not labeled.any():
        raise ValueError(
            f"y has no labeled rows: all {len(y)} labels are -1 (or NaN, None, "
            "blank), which marks a row as unlabeled; label at least one row of each "
            "class"
        )
    check_classification_targets(y[labeled])
    n_classes = len(np.unique(y[labeled]))
    if need_two_classes and n_classes < 2:
        raise ValueError(
            f"y has labeled rows of one class only ({y[labeled][0]!r}); label rows "
            "of at least two classes"
        )
    return y, labeled
