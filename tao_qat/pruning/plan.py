"""Which filters every layer keeps: statistics applied to the equalization groups (TAO §7).

TF-free: takes the model config dict and the convolution kernels as numpy arrays and returns
a ``PruningPlan`` (kept output-channel indices of every layer), which ``surgery`` applies.
"""

import dataclasses
import logging

import numpy as np

from tao_qat.common.errors import UsageError
from tao_qat.pruning.groups import analyze_graph, broadcast_inputs
from tao_qat.pruning.rules import (
    DEFAULT_RULES,
    ELEMENTWISE_KIND,
    PRUNABLE_KIND,
    UnprunableModelError,
)
from tao_qat.pruning.statistics import (
    CLI_NORMALIZERS,
    CRITERIA,
    filter_norms,
    merge_stats,
    normalize,
    retained_indices,
)

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PruneSettings:
    """TAO's pruning flags as plain values (defaults as in TAO, reference §7)."""

    normalizer: str = "max"  # -n
    criterion: str = "union"  # -eq
    granularity: int = 8  # -pg
    threshold: float = 0.1  # -pth
    min_num_filters: int = 16  # -nf
    excluded: tuple = ()  # -el

    def validate(self):
        """Raise UsageError naming the flag of an invalid value; return self."""
        if self.normalizer not in CLI_NORMALIZERS:
            raise UsageError(
                f"-n/--normalizer: {self.normalizer!r} is not one of {', '.join(CLI_NORMALIZERS)}"
            )
        if self.criterion not in CRITERIA:
            raise UsageError(
                f"-eq/--equalization_criterion: {self.criterion!r} is not one of "
                f"{', '.join(CRITERIA)}"
            )
        if int(self.granularity) < 1:
            raise UsageError(f"-pg/--pruning_granularity: must be >= 1, got {self.granularity}")
        if int(self.min_num_filters) < 1:
            raise UsageError(f"-nf/--min_num_filters: must be >= 1, got {self.min_num_filters}")
        if not np.isfinite(self.threshold):
            raise UsageError(f"-pth/--pruning_threshold: must be finite, got {self.threshold}")
        return self


@dataclasses.dataclass
class PruningPlan:
    """Kept channels of every layer.

    analysis: groups.GraphAnalysis. retained: {prunable layer: int64 [F'] kept output-filter
    indices, ascending}. stats: {prunable layer: float64 [F] normalised statistic} (absent for
    layers of fixed groups).
    """

    analysis: object
    retained: dict
    stats: dict

    def output_keep(self, layer_name):
        """int64 indices of the original output channels of ``layer_name`` that remain."""
        origin = self.analysis.origin[layer_name]
        if origin is None:
            return np.arange(self.analysis.nodes[layer_name].channels)
        return self.retained[origin]

    def input_keep(self, layer_name):
        """Kept channel indices of the (first non-broadcast) input of ``layer_name``."""
        node = self.analysis.nodes[layer_name]
        skip = set(broadcast_inputs(self.analysis.nodes, node))
        source = next(name for name in node.inputs if name not in skip)
        return self.output_keep(source)

    def is_identity(self):
        """True when no layer loses a channel."""
        nodes = self.analysis.nodes
        return all(len(self.retained[n]) == nodes[n].channels for n in self.retained)


def _check_excluded(nodes, excluded):
    unknown = [name for name in excluded if name not in nodes]
    if unknown:
        raise UsageError(
            f"-el/--excluded_layers: no layer named {', '.join(map(repr, unknown))} in the model"
        )
    for name in excluded:
        if nodes[name].kind != PRUNABLE_KIND:
            logger.warning(
                "-el/--excluded_layers: %s is a %s, not a prunable layer; it has no filters "
                "to keep and is ignored",
                name,
                nodes[name].class_name,
            )


def _group_retained(group, nodes, kernels, settings):
    sizes = {nodes[name].channels for name in group.members}
    if len(sizes) != 1:
        raise UnprunableModelError(
            f"layers {', '.join(group.members)} meet in element-wise layers with different "
            f"filter counts {sorted(sizes)}"
        )
    if group.fixed:
        return np.arange(sizes.pop()), {}
    missing = [name for name in group.members if name not in kernels]
    if missing:
        raise UnprunableModelError(f"layer {missing[0]!r} has no kernel weights")
    stats = {
        name: normalize(filter_norms(kernels[name]), settings.normalizer) for name in group.members
    }
    merged = merge_stats([stats[name] for name in group.members], settings.criterion)
    keep = retained_indices(
        merged, settings.threshold, settings.min_num_filters, settings.granularity
    )
    return keep, stats


def plan_pruning(model_config, kernels, settings, rules=DEFAULT_RULES):
    """Decide the kept filters of every prunable layer.

    Args:
        model_config: functional model config dict.
        kernels: {prunable layer name: kernel array, output filters on the last axis}.
        settings: PruneSettings (validated here).
        rules: LayerRules.

    Returns:
        PruningPlan.
    """
    settings.validate()
    analysis = analyze_graph(model_config, settings.excluded, rules)
    _check_excluded(analysis.nodes, settings.excluded)
    retained, stats = {}, {}
    for group in analysis.groups:
        keep, group_stats = _group_retained(group, analysis.nodes, kernels, settings)
        stats.update(group_stats)
        for name in group.members:
            retained[name] = keep
        logger.debug(
            "group %s: %d -> %d filters%s",
            ", ".join(group.members),
            analysis.nodes[group.members[0]].channels,
            len(keep),
            f" (kept: {group.fixed})" if group.fixed else "",
        )
    plan = PruningPlan(analysis, retained, stats)
    for node in analysis.nodes.values():
        if node.kind == ELEMENTWISE_KIND:
            skip = set(broadcast_inputs(analysis.nodes, node))
            keeps = [plan.output_keep(name) for name in node.inputs if name not in skip]
            assert all(np.array_equal(keeps[0], keep) for keep in keeps), node.name
    return plan
