"""Pruning report: per-layer filters before -> after, parameters, FLOPs, TAO's pruning ratio.

TF-free (duck-typed on Keras models). Parameters are ``model.count_params()`` (BN moving
statistics included, as TAO counts them); FLOPs are 2 x multiply-accumulates of the prunable
convolutions at the model's input size (other layers add well under 1 %), None when the input
size is not fixed. TAO's "pruning ratio (pruned model / original model)" is
params_after / params_before (reference §7).
"""

import dataclasses
import math

from tabulate import tabulate

from tao_qat.pruning.rules import PRUNABLE_KIND


@dataclasses.dataclass
class LayerRow:
    """One prunable layer: filters before/after, group label ("" = alone), note."""

    name: str
    before: int
    after: int
    group: str
    note: str


@dataclasses.dataclass
class PruneReport:
    """Everything ``qat prune`` prints and writes as JSON."""

    layers: list
    groups: list  # [[member names]] of the equalization groups with >= 2 members
    params_before: int
    params_after: int
    flops_before: int | None
    flops_after: int | None
    settings: dict
    paths: dict = dataclasses.field(default_factory=dict)

    @property
    def pruning_ratio(self):
        """Pruned / original parameters (TAO's KPI)."""
        return self.params_after / self.params_before if self.params_before else math.nan

    def to_dict(self):
        """JSON-ready dict."""
        return {
            **self.paths,
            "settings": self.settings,
            "parameters": {"before": self.params_before, "after": self.params_after},
            "flops": {"before": self.flops_before, "after": self.flops_after},
            "pruning_ratio": self.pruning_ratio,
            "groups": self.groups,
            "layers": [dataclasses.asdict(row) for row in self.layers],
        }


def conv_flops(model, layer_names):
    """2 x multiply-accumulates of the named conv layers of ``model`` (None if H/W unknown).

    A Conv2D with kernel [kh, kw, C_in, F] and output [B, H, W, F] costs
    2 * kh * kw * C_in * F * H * W.
    """
    total = 0
    for name in layer_names:
        layer = model.get_layer(name)
        height, width = layer.output_shape[1:3]
        if height is None or width is None:
            return None
        total += 2 * math.prod(int(d) for d in layer.kernel.shape) * height * width
    return total


def build_report(original, pruned, plan, settings):
    """PruneReport comparing ``original`` and ``pruned`` (keras models) under ``plan``.

    Args:
        settings: PruneSettings (recorded in the report).
    """
    analysis = plan.analysis
    labels, groups = {}, []
    for group in analysis.groups:
        if len(group.members) > 1:
            groups.append(list(group.members))
            for name in group.members:
                labels[name] = f"g{len(groups)}"
    rows = []
    prunable = [n for n, node in analysis.nodes.items() if node.kind == PRUNABLE_KIND]
    for name in prunable:
        group = analysis.group(name)
        rows.append(
            LayerRow(
                name=name,
                before=analysis.nodes[name].channels,
                after=int(len(plan.retained[name])),
                group=labels.get(name, ""),
                note=f"kept: {group.fixed}" if group.fixed else "",
            )
        )
    return PruneReport(
        layers=rows,
        groups=groups,
        params_before=int(original.count_params()),
        params_after=int(pruned.count_params()),
        flops_before=conv_flops(original, prunable),
        flops_after=conv_flops(pruned, prunable),
        settings={
            "normalizer": settings.normalizer,
            "equalization_criterion": settings.criterion,
            "pruning_granularity": settings.granularity,
            "pruning_threshold": settings.threshold,
            "min_num_filters": settings.min_num_filters,
            "excluded_layers": list(settings.excluded),
        },
    )


def _giga(value):
    return "n/a (input size not fixed)" if value is None else f"{value / 1e9:.3f} G"


def format_report(report):
    """Multi-line text: the per-layer table, then parameters, FLOPs and the pruning ratio."""
    table = tabulate(
        [(r.name, r.before, "->", r.after, r.group, r.note) for r in report.layers],
        headers=["layer", "before", "", "after", "group", "note"],
        tablefmt="simple",
        colalign=("left", "right", "center", "right", "left", "left"),
    )
    lines = [
        "Filters of the prunable layers (group: equalization group, same kept indices):",
        table,
        "",
        f"Equalization groups (>= 2 layers): {len(report.groups)}",
        f"Parameters: {report.params_before:,} -> {report.params_after:,}",
        f"FLOPs (2 x MACs of the convolutions): {_giga(report.flops_before)} -> "
        f"{_giga(report.flops_after)}",
        f"Pruning ratio (pruned model / original model): {report.pruning_ratio:.4f}",
    ]
    return "\n".join(lines)
