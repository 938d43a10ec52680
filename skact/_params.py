"""scikit-learn's parameter protocol for skact's small configurable objects.

An objective or an augmentation passed to :class:`~skact.ACTEncoder` is a nested
parameter to scikit-learn: ``clone`` copies it through ``get_params`` and a grid search
sets ``objective__alpha`` or ``augment__flip_p`` through ``set_params``. These objects
are not estimators (no ``fit``), so they take the protocol from this mixin rather than
from :class:`sklearn.base.BaseEstimator`.
"""

from __future__ import annotations

import inspect
from typing import Any, Self


class ParamsMixin:
    """``get_params`` / ``set_params`` over the constructor's arguments.

    A subclass stores each constructor argument unchanged under its own name, as a
    scikit-learn estimator does.
    """

    @classmethod
    def _get_param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments, for copies, grid searches and saving.

        Parameters
        ----------
        deep : bool, default=True
            Ignored: no parameter is itself an object with parameters.

        Returns
        -------
        dict
            ``type(obj)(**obj.get_params())`` builds an equal object.
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor arguments by name.

        Parameters
        ----------
        **params
            Parameter names and values, as :meth:`get_params` lists them.

        Returns
        -------
        self
            This object.

        Raises
        ------
        ValueError
            For a name that is not a parameter.
        """
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid "
                    f"parameters: {', '.join(valid)}"
                )
            setattr(self, name, value)
        return self
