"""Grid search over the encoder's parameters

Tune ``alpha`` (the weight of ACT's decorrelation term) and ``n_components`` (the width
of the features) of :class:`~skact.ACTEncoder` inside a pipeline with
:class:`~sklearn.model_selection.GridSearchCV`, two fits at a time. Each fit limits
torch to its share of the cores (joblib's workers export ``OMP_NUM_THREADS``), so
``n_jobs=2`` does not oversubscribe a two-core machine. To stay quick the search uses
500 digits and half the default epochs; refit the winner on all your data.
"""

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skact import ACTEncoder

X, y = load_digits(return_X_y=True)
X, y = X[:500], y[:500]

encoder = ACTEncoder(max_iter=50, random_state=0)
pipeline = make_pipeline(encoder, LogisticRegression(max_iter=1000))
grid = {
    "actencoder__alpha": [0.01, 0.1],
    "actencoder__n_components": [16, 64],
}
search = GridSearchCV(pipeline, grid, cv=3, n_jobs=2).fit(X, y)

print(f"{'alpha':>6} {'n_components':>13} {'accuracy':>9}")
results = search.cv_results_
for i in results["rank_test_score"].argsort():
    alpha = results["param_actencoder__alpha"][i]
    width = results["param_actencoder__n_components"][i]
    print(f"{alpha:>6} {width:>13} {results['mean_test_score'][i]:>9.3f}")
print(f"best: {search.best_params_}")
