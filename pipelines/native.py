"""The compiled record encoder (``native_encoder.c``), built at first use and cached.

The numpy encoder in ``pipelines.tfrecord`` needs many passes over (rows, bytes) matrices
and a table-driven CRC; the C version writes each record once and uses the CPU's CRC-32C
instruction, an order of magnitude faster. It is compiled with the system C compiler through
:mod:`mdaf_tf.native` (cached in ``$MDAF_TF_OP_CACHE``, default ``~/.cache/mdaf_tf``, keyed
by the source and the compiler command; built into a temporary renamed into place, so
concurrent processes never load a half-written library). Without a compiler (or with
``MDAF_TF_NATIVE_ENCODER=0``) ``library()`` returns None and the numpy encoder is used:
the bytes are the same either way.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from mdaf_tf import native as mdaf_native

SOURCE = Path(__file__).with_name("native_encoder.c")
FLAGS = ["-O3", "-fPIC", "-shared"]
_state: dict = {}
_lock = threading.Lock()  # shard writer threads may ask first


class Feature(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("end", ctypes.c_void_p), ("len", ctypes.c_void_p),
                ("offset", ctypes.c_void_p),
                ("width", ctypes.c_int64), ("elsize", ctypes.c_int64),
                ("key", ctypes.c_char_p), ("keylen", ctypes.c_int64)]


def _compiler() -> str:
    return os.environ.get("CC", "cc")


def library_path() -> Path:
    return mdaf_native.library_path(SOURCE, [_compiler(), *FLAGS])


def build() -> Path:
    """Compile unless cached; raises RuntimeError with the compiler's message on failure."""
    return mdaf_native.compile_library(SOURCE, _compiler(), FLAGS)


def _load():
    if os.environ.get("MDAF_TF_NATIVE_ENCODER", "1") == "0":
        return None
    try:
        lib = ctypes.CDLL(str(build()))
    except (RuntimeError, OSError) as err:
        warnings.warn(f"compiled record encoder unavailable, using the slower numpy one: "
                      f"{str(err).splitlines()[0]}", RuntimeWarning, stacklevel=3)
        return None
    lib.encode_records.restype = ctypes.c_int64
    lib.encode_records.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.POINTER(Feature),
                                   ctypes.c_void_p, ctypes.c_void_p]
    lib.varint_stream.restype = ctypes.c_int64
    lib.varint_stream.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                  ctypes.c_void_p, ctypes.c_void_p]
    lib.crc32c.restype = ctypes.c_uint32
    lib.crc32c.argtypes = [ctypes.c_char_p, ctypes.c_int64]
    lib.crc32c_uses_hardware.restype = ctypes.c_int
    if lib.crc32c(b"123456789", 9) != 0xE3069283:  # e.g. a big-endian host
        return None
    return lib


def library():
    """The loaded library, or None when it cannot be built (the numpy path is used)."""
    with _lock:
        if "lib" not in _state:
            _state["lib"] = _load()
        return _state["lib"]


def varint_stream(lib, values) -> tuple:
    """(bytes as uint8 array, int64 offsets of length n + 1) of int32/int64 ``values``."""
    values = np.ascontiguousarray(values)
    if values.dtype not in (np.int32, np.int64):
        values = values.astype(np.int64)
    n = len(values)
    out = np.empty(10 * n + 4, np.uint8)
    offset = np.empty(n + 1, np.int64)
    used = lib.varint_stream(values.ctypes.data, values.itemsize, n, out.ctypes.data,
                             offset.ctypes.data)
    return out[:used].copy(), offset
