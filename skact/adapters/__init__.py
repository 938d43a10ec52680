"""Input adapters: one per kind of input, chosen once by :func:`~.factory.read_input`.

An adapter turns its kind of input into tensors and owns what depends on the kind:
the default network and the names of the built-in ones that accept it, the default
views, the ``"auto"`` hyper-parameters (:mod:`skact._auto`), whether training data
streams from files, the fitted column attributes and the state it saves.

- :class:`~skact.adapters.table.TabularAdapter`: numeric tables;
- :class:`~skact.adapters.mixed.MixedTableAdapter`: numeric, boolean and categorical
  columns, missing values;
- :class:`~skact.adapters.image.ImageAdapter`: arrays, PIL images and image files.

:mod:`.base` declares the protocol; :mod:`.factory` is the only place that inspects
the user's input to decide its kind, and :func:`.factory.register_adapter` adds a kind.
The readers of user containers (image files, tables column by column) are in
:mod:`skact.io`.
"""
