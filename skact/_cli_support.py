"""The few internals the ``skact`` command uses beyond skact's public API, and why.

:mod:`skact.cli` is a client of the library: it imports :mod:`skact`,
:mod:`skact.evaluation` and :mod:`skact.callbacks` like any user, and this module
for the rest, each name of which serves the command only (a Python user has the
object, or the exception, that the command has to put into words):

- :func:`atomic_write`, :func:`check_writable`, :func:`names_a_folder`: the command
  writes its outputs whole or not at all, and tries the output's folder before an
  hour of training rather than after it.
- :class:`Advice`: the fix an error of the library carries as data (``exc.advice``),
  which the command says as its options (``--handle-missing indicator``) instead of
  Python parameters; :func:`check_values` raises those errors, and the command calls
  it on what it read before training, to name the file's columns.
- :func:`resolve_device`: the library's check of ``device``, run when the option is
  parsed, before any data is read.
- :data:`MINUS_ONE`, :func:`labeled_mask`, :func:`warn_if_minus_one_ambiguous`: the
  library's rule for unlabeled rows (the user guide's "Unlabeled rows"), which the
  command applies to the labels it reads, to count and report them.
- :data:`MONITOR_ROWS`, :data:`MONITOR_SHOTS`, :data:`MONITOR_DRAWS`: the sample the
  training monitor follows, which ``skact fit``'s last line states.
- :data:`EXPORT_FORMATS`, :data:`INPUTS_SUFFIX`: the suffixes ``skact export``
  checks before loading the model, and the file it names beside the export.
- :class:`ImageFiles`: the decoder ``ACTEncoder`` reads image files with, which
  ``skact evaluate --baselines`` reads an image folder's pixels with (the same
  pixels the model sees).
"""

from __future__ import annotations

from ._atomic import atomic_write, check_writable, names_a_folder
from ._callbacks import MONITOR_DRAWS, MONITOR_ROWS, MONITOR_SHOTS
from ._checks import Advice, check_values
from ._device import resolve_device
from ._export import EXPORT_FORMATS, INPUTS_SUFFIX
from ._labels import MINUS_ONE, labeled_mask, warn_if_minus_one_ambiguous
from .io.images import ImageFiles

__all__ = [
    "EXPORT_FORMATS",
    "INPUTS_SUFFIX",
    "MINUS_ONE",
    "MONITOR_DRAWS",
    "MONITOR_ROWS",
    "MONITOR_SHOTS",
    "Advice",
    "ImageFiles",
    "atomic_write",
    "check_values",
    "check_writable",
    "labeled_mask",
    "names_a_folder",
    "resolve_device",
    "warn_if_minus_one_ambiguous",
]
