"""Tabular defaults on digits: few-shot linear probe of one ACTEncoder configuration.

Used to choose the tabular defaults (issue 2). Digits as rows of 64 pixels, 70/30
stratified split (random_state=0), encoder fitted on the unlabeled training part,
linear probe (StandardScaler + LogisticRegression) with k = 1, 5, 10 labels per class,
mean of 10 draws. Pass ACTEncoder parameters as JSON; ``{"raw": 1}`` scores
standardised raw pixels instead::

    OMP_NUM_THREADS=1 python benchmarks/bench_tabular_defaults.py '{"corruption_rate": 0.2}'
"""

import json
import sys
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skact import ACTEncoder
from skact.evaluation import few_shot_score

X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
kw = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
if kw.get("raw"):
    rep = StandardScaler().fit(Xtr)
else:
    t = time.time()
    rep = ACTEncoder(**{"random_state": 0, **kw}).fit(Xtr)
    print("fit", round(time.time() - t, 1), "s")
res = few_shot_score(
    rep, Xtr, ytr, Xte, yte, k=[1, 5, 10], protocols=["linear"], n_draws=10
)
print(kw, [round(r.mean, 3) for r in res])
