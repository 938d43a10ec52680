"""skact: Adversarial Contrastive Training for scikit-learn.

``ACTEncoder`` learns a representation from unlabeled data; put it ahead of any
classifier in a pipeline.
"""

import logging

from ._encoder import ACTEncoder, resolved_settings
from ._finetune import FineTunedClassifier
from ._persistence import ModelFileError, load
from ._training import NonFiniteLossError
from ._transfer import TransferClassifier
from ._warnings import IgnoredParameterWarning, OutOfRangeWarning, UnseenCategoryWarning

__all__ = [
    "ACTEncoder",
    "FineTunedClassifier",
    "IgnoredParameterWarning",
    "ModelFileError",
    "NonFiniteLossError",
    "OutOfRangeWarning",
    "TransferClassifier",
    "UnseenCategoryWarning",
    "load",
    "resolved_settings",
]
__version__ = "0.1.0"

# The library logs to "skact" and leaves the handlers to the application (the logging
# HOWTO's rule for libraries): without one, nothing of INFO is shown.
logging.getLogger(__name__).addHandler(logging.NullHandler())
