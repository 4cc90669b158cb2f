"""Compression methods, one module each (a target is a ``Method``, ``compress/base.py``).

Their registry (built-ins, the ``resnetbench.compressions`` entry-point group, matrix import
paths ``compressions: {name: "pkg.mod:METHOD"}``) lives in ``resnetbench.registries``, low in
the layers, and is re-exported here, its public home. Listing names imports no method module.
"""

from resnetbench.registries import COMPRESSIONS, DEFAULT_COMPRESSION, compression_names, get_method, unsupported_dtype

__all__ = ["COMPRESSIONS", "DEFAULT_COMPRESSION", "compression_names", "get_method", "unsupported_dtype"]
