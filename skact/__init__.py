"""skact: Adversarial Contrastive Training for scikit-learn.

``ACTEncoder`` learns a representation from unlabeled data; put it ahead of any
classifier in a pipeline.
"""

from ._encoder import ACTEncoder

__all__ = ["ACTEncoder"]
__version__ = "0.1.0"
