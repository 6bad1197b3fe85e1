"""Parameter counts by component, like the seed thesis's Table 1."""

from __future__ import annotations

import math


def count_parameters(model) -> dict[str, int]:
    """Trainable + non-trainable parameters per component of ``model``.

    A model declares its components as ``model.components``: a dict from component name to
    the names of its top-level layers. Layers not listed are counted under ``"other"``. The
    values add up to ``model.count_params()`` and a ``"total"`` entry holds that sum.
    """
    declared = getattr(model, "components", {})
    owner = {layer_name: comp for comp, names in declared.items() for layer_name in names}
    counts = {comp: 0 for comp in declared}
    seen = set()  # a variable shared by two layers counts once
    for layer in model.layers:
        comp = owner.get(layer.name, "other")
        for weight in layer.weights:
            if id(weight) in seen:
                continue
            seen.add(id(weight))
            counts[comp] = counts.get(comp, 0) + math.prod(weight.shape)
    counts["total"] = sum(counts.values())
    return counts


def parameter_table(model) -> str:
    """A markdown table of ``count_parameters(model)`` with each component's share."""
    counts = count_parameters(model)
    total = counts["total"] or 1
    rows = ["| component | parameters | share |", "|---|---:|---:|"]
    for comp, n in counts.items():
        if comp == "total":
            continue
        rows.append(f"| {comp} | {n:,} | {100 * n / total:.1f}% |")
    rows.append(f"| **total** | **{counts['total']:,}** | 100% |")
    return "\n".join(rows)
