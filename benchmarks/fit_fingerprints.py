"""Seeded fingerprints of ACTEncoder fits, one per input kind: is a refactor bit-identical?

Fits (3 epochs, ``random_state=0``) a numeric table (wine), a mixed table with gaps,
8x8 digit images from an array and from PNG files, a warm start (and its second fit)
and a semi-supervised fit; writes each fit's ``transform`` hash and loss curve as JSON
and prints the hashes.

Usage::

    python benchmarks/fit_fingerprints.py before.json   # on one commit
    python benchmarks/fit_fingerprints.py after.json    # on another; compare the files
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_digits, load_wine

from skact import ACTEncoder


def digest(features: Any) -> str:
    """The first 16 hex digits of the SHA-256 of ``features`` as float64."""
    array = np.ascontiguousarray(np.asarray(features, dtype=np.float64))
    return hashlib.sha256(array.tobytes()).hexdigest()[:16]


def record(encoder: ACTEncoder, X: Any) -> dict[str, Any]:
    return {
        "Z": digest(encoder.transform(X)),
        "loss": [float(v) for v in encoder.loss_curve_],
    }


def main(path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def run(name: str, X: Any, y: Any = None, **params: Any) -> ACTEncoder:
        encoder = ACTEncoder(random_state=0, max_iter=3, **params).fit(X, y)
        out[name] = record(encoder, X)
        return encoder

    X_wine, y_wine = load_wine(return_X_y=True)
    run("numeric", X_wine)
    table = pd.DataFrame(X_wine[:, :5], columns=list("abcde"))
    table.loc[::7, "a"] = np.nan
    table["cat"] = pd.Categorical(np.array(["x", "y", "z"])[y_wine])
    table.loc[::5, "cat"] = None
    run("mixed", table, handle_missing="indicator")
    images = load_digits().images[:300]
    run("images", images)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, image in enumerate(images[:120]):
            paths.append(os.path.join(folder, f"{i}.png"))
            Image.fromarray((image * 15).astype(np.uint8)).save(paths[-1])
        run("files", paths)
    warm = run("warm", X_wine, warm_start=True)
    out["warm2"] = record(warm.fit(X_wine), X_wine)
    y_semi = y_wine.copy()
    y_semi[::2] = -1
    run("semi", X_wine, y_semi)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    result = main(sys.argv[1])
    print(json.dumps({name: fit["Z"] for name, fit in result.items()}))
