"""What a compression method is: its dtypes, its model transform or quantization scheme, its defaults.

A method either transforms the fp32 PyTorch model before any backend sees it
(``prepare``: pruning, distillation), or names a quantization *scheme* that each backend
implements with its own toolchain (``quantization``: ``"int8-dynamic"`` weights ahead and
activations at run time, ``"int8-static"`` calibrated weights and activations). Backends
declare which schemes they implement, so a method reaches a backend by what it does,
never by its name. No torch at import: the matrix validator reads these declarations.
"""

from __future__ import annotations

# The declarations live in the leaf module (``domain``): the matrix's validation and the
# registries read them below every package that implements a method. This module keeps
# their public home for extensions (``resnetbench.compress.base.Method``).
from resnetbench.domain import FLOATS, INT8_BUDGET, INT8_DYNAMIC, INT8_STATIC, Method, MethodContext, Prepare

__all__ = ["FLOATS", "INT8_BUDGET", "INT8_DYNAMIC", "INT8_STATIC", "Method", "MethodContext", "Prepare"]
