"""Reuse a pretrained encoder with FrozenEstimator

Train :class:`~skact.ACTEncoder` once on unlabeled data, then put it in pipelines
without ever training it again. :class:`sklearn.frozen.FrozenEstimator` makes the
pipeline's ``fit`` skip the encoder, and cloning it (as cross-validation does) keeps the
fitted encoder, so the classifier can be cross-validated and tuned on a few labels
while the encoder stays as it was. The script checks that the encoder's weights are
untouched at the end.
"""

import torch
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skact import ACTEncoder
from skact.evaluation import sample_k_shot

X, y = load_digits(return_X_y=True)
X_pool, X_test, y_pool, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)

# 1. Pretrain on the unlabeled pool.
encoder = ACTEncoder(random_state=0).fit(X_pool)
weights = {k: v.clone() for k, v in encoder.encoder_.state_dict().items()}

# 2. A handful of labels: 10 per class.
labelled = sample_k_shot(y_pool, k=10, random_state=0)
X_few, y_few = X_pool[labelled], y_pool[labelled]

# 3. Tune the classifier on the few labels; the encoder is frozen.
pipeline = make_pipeline(
    FrozenEstimator(encoder),
    StandardScaler(),
    LogisticRegression(max_iter=1000),
)
grid = {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}
search = GridSearchCV(pipeline, grid, cv=5)
search.fit(X_few, y_few)
print(f"best C: {search.best_params_['logisticregression__C']}")
n_labels, cv_score = len(y_few), search.best_score_
print(f"cross-validated accuracy with {n_labels} labels: {cv_score:.3f}")
print(f"test accuracy: {search.score(X_test, y_test):.3f}")

# 4. The encoder was never retrained: same epochs, same weights.
after = encoder.encoder_.state_dict()
unchanged = all(torch.equal(weights[k], v) for k, v in after.items())
print(f"encoder epochs: {encoder.n_iter_}, weights unchanged: {unchanged}")
