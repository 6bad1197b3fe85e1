"""Atomic file writes: every temporary-then-rename writer of the package goes through here.

A reader (TF Serving, a resumed run, a report viewer, a second process) sees either the old
file or the complete new one, never a partial write: the content goes to a temporary sibling
``.NAME.tmp-PID`` (same directory, so the rename stays on one file system) which
``os.replace`` then moves over the target. Standard library only: cheap to import anywhere.

(Directory-shaped outputs with their own layout and clean-up rules -- checkpoints in
:mod:`mdaf_tf.training.checkpoint`, SavedModel versions in :mod:`mdaf_tf.export` -- rename
whole directories and keep that logic beside the format they write.)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path


def temporary_sibling(path, suffix: str = "") -> Path:
    """``.NAME.tmp-PID`` + ``suffix`` beside ``path`` (hidden, and unique per process)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


@contextlib.contextmanager
def atomic_path(path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; when the block finishes,
    rename it over ``path``. If the block raises, the temporary is removed (when it exists)
    and ``path`` is left as it was.

    ``suffix`` ends the temporary name, for writers that pick a format from the extension
    (``fig.savefig``)."""
    tmp = temporary_sibling(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path, value) -> None:
    """Write ``value`` as JSON (indent 2, key order kept, trailing newline) atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=False)
        f.write("\n")


def save_figure_atomic(fig, path, **savefig_kwargs) -> None:
    """``fig.savefig(path, **savefig_kwargs)`` atomically (the format comes from the
    extension of ``path``, which the temporary name keeps)."""
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
