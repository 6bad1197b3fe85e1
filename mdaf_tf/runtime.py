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
