"""Process-wide TensorFlow settings that must be in place before TensorFlow starts.

TensorFlow's default CPU allocator hands every large tensor to ``malloc``, which maps
and unmaps fresh pages for each one; a training step of MDAF at batch 2048 allocates
gigabytes of short-lived activations, and the page faults took over a third of the step
(``sys`` time 89 s of 248 s CPU in ``benchmarks/train_throughput.py``). TensorFlow's
best-fit-with-coalescing (BFC) pool, switched on by ``TF_CPU_ALLOCATOR_USE_BFC``, keeps
those pages: the same benchmark went from 193 to 372 training examples/s on the idle
2-core machine (``benchmarks/RESULTS.md`` has the current figures). The variable is read
when TensorFlow creates its CPU allocator, so it is set when ``mdaf_tf`` is imported; a
value already in the environment (for instance ``false``) is kept.
"""

from __future__ import annotations

import os

CPU_ALLOCATOR_ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def use_bfc_cpu_allocator() -> None:
    """Ask TensorFlow for its BFC CPU allocator unless the environment already decides."""
    os.environ.setdefault(CPU_ALLOCATOR_ENV, "true")


VERBOSE_ENV = "MDAF_TF_VERBOSE"


def start_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow and create its devices without the C++ start-up lines.

    On a machine without a GPU TensorFlow prints a few lines at start-up, among them an
    ``E0000 ... failed call to cuInit`` error, some before its log level applies (absl's
    "before InitializeLog" messages). Unless ``verbose`` or ``MDAF_TF_VERBOSE=1``, the import
    and the device set-up run with standard error sent to ``/dev/null``; later C++ warnings
    and errors print as usual (``TF_CPP_MIN_LOG_LEVEL`` 2 unless set). A failure to import
    still raises, with its message."""
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if verbose or os.environ.get(VERBOSE_ENV, "0") not in ("", "0"):
        import tensorflow as tf

        tf.config.list_physical_devices()
        return
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def add_verbose_argument(parser) -> None:
    """``--verbose``: what ``start_tensorflow`` reads."""
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ start-up log lines (also "
                        f"{VERBOSE_ENV}=1)")


def add_quiet_argument(parser) -> None:
    """``--quiet``: no progress bars or per-epoch lines, only the result and errors."""
    parser.add_argument("--quiet", action="store_true",
                        help="print only the result lines and errors (no progress)")


def say(quiet: bool):
    """``print``, or a function that prints nothing under ``--quiet``."""
    return (lambda *args, **kwargs: None) if quiet else print
