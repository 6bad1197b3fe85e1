"""Numerical kernels behind the layers (the selective scan and its implementations).

``selective_scan(u, delta, A, B, C, D, impl="auto")`` is the entry point; ``impl`` picks one of
``IMPLEMENTATIONS`` (see :mod:`mdaf_tf.ops.selective_scan`) and ``resolve_impl`` says which one
``"auto"`` stands for on this machine.

Example:

```python
import numpy as np
from mdaf_tf.ops import selective_scan

batch, length, d_inner, d_state = 2, 6, 4, 3
u = np.random.normal(size=(batch, length, d_inner)).astype("float32")
delta = np.full((batch, length, d_inner), 0.1, "float32")
A = -np.ones((d_inner, d_state), "float32")
B = np.random.normal(size=(batch, length, d_state)).astype("float32")
C = np.random.normal(size=(batch, length, d_state)).astype("float32")
D = np.ones((d_inner,), "float32")
y = selective_scan(u, delta, A, B, C, D, impl="chunked")
print(y.shape)  # (2, 6, 4)
```

Note: the package attribute ``selective_scan`` is the function; the module of the same name is
``sys.modules["mdaf_tf.ops.selective_scan"]`` (``from mdaf_tf.ops.selective_scan import ...``
reaches it as before).
"""

from mdaf_tf.ops.fast_scan import fast_scan_available
from mdaf_tf.ops.selective_scan import (
    DEFAULT_IMPL,
    IMPLEMENTATIONS,
    reference_scan,
    resolve_impl,
    selective_scan,
)

__all__ = [
    "DEFAULT_IMPL",
    "IMPLEMENTATIONS",
    "fast_scan_available",
    "reference_scan",
    "resolve_impl",
    "selective_scan",
]
