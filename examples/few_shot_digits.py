"""Few-shot classification of digits from a table of pixels

Fit :class:`~skact.ACTEncoder` on the unlabeled training part of scikit-learn's digits
(1,257 images of 8x8 pixels, read as rows of 64 numbers), then score its features with
1, 5 and 10 labels per class against PCA and the raw pixels. Every representation is
scored with the same protocol (:func:`skact.evaluation.few_shot_score`): a logistic
regression on the standardised features of ``k`` labelled samples per class, averaged
over 10 random draws of those samples, tested on the 540 held-out digits.
"""

from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from skact import ACTEncoder
from skact.evaluation import few_shot_score

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)

# The representations are fitted without labels.
representations = {
    "ACT": ACTEncoder(random_state=0).fit(X_train),
    "PCA": PCA(n_components=32, random_state=0).fit(X_train),
    "raw pixels": None,  # few_shot_score uses X itself
}

print(f"{'features':<12}" + "".join(f"{f'k={k}':>16}" for k in (1, 5, 10)))
for name, representation in representations.items():
    results = few_shot_score(
        representation,
        X_train,
        y_train,
        X_test,
        y_test,
        k=[1, 5, 10],
        protocols=["linear"],
        n_draws=10,
        random_state=0,
    )
    cells = "".join(f"{r.mean:>9.3f} ± {r.std:.3f}" for r in results)
    print(f"{name:<12}{cells}")
