"""gpu-expert: which GPU(s) to buy or rent for Llama-family LLMs, and why.

`from expert import advise, estimate` gives the Python API (expert/cli/api.py), imported on first use so that
`import expert` stays cheap. `expert.estimate` is also the estimator subpackage: calling it runs the API's
estimate, and `from expert.estimate import Config` works as before.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__version__ = "0.1.0"
__all__ = ["advise", "estimate", "__version__"]


class _CallableEstimate(types.ModuleType):
    """The estimator subpackage, callable as the API function `estimate(model, gpu, **options)`."""

    def __call__(self, model: str, gpu: str, **options: Any) -> dict[str, Any]:
        from .cli import api

        return api.estimate(model, gpu, **options)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # The import system sets `expert.estimate` when the subpackage loads: make that module callable.
        if name == "estimate" and type(value) is types.ModuleType:
            value.__class__ = _CallableEstimate
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name == "advise":
        from .cli import api

        return api.advise
    if name == "estimate":
        import importlib

        return importlib.import_module(".estimate", __name__)
    raise AttributeError(f"module 'expert' has no attribute {name!r}")
