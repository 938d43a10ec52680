"""Readers of user input, one module per kind of container.

- :mod:`.tables`: container checks (iterators, Series, dicts, empty frames) and tables
  read column by column for mixed-type tables;
- :mod:`.images`: what counts as image input, image arrays to channels-first, image
  files and PIL images decoded lazily and streamed batch by batch.

The adapters in :mod:`skact.adapters` turn what these read into tensors.
"""
