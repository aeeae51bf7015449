"""Graph analysis for pruning: layer kinds, channel origins, equalization groups (TAO §7).

Works on the functional model config dict (``model.get_config()`` or the JSON stored in an
.hdf5), so it needs no TensorFlow. Every tensor's channels are traced back through
pass-through layers to the convolutions that produce them (its "origin"); an element-wise
layer ties the origins of its inputs together, transitively (union-find), so e.g. a chain of
identity shortcuts puts every conv of a ResNet stage in one group. A group keeps all filters
when a member is excluded, feeds a model output, or is combined with the network input.
"""

import dataclasses

from tao_qat.pruning.rules import (
    DEFAULT_RULES,
    ELEMENTWISE_KIND,
    INPUT_KIND,
    PASS_KIND,
    PRUNABLE_KIND,
    UnprunableModelError,
)


@dataclasses.dataclass
class Node:
    """One layer: name, Keras class, kind (rules.*_KIND), producer names, output channels."""

    name: str
    class_name: str
    kind: str
    inputs: list
    channels: int
    config: dict


@dataclasses.dataclass
class Group:
    """Prunable layers that must keep the same channel indices.

    members: layer names in graph order; fixed: why the group keeps every filter (None if it
    may be pruned).
    """

    members: list
    fixed: str | None = None


@dataclasses.dataclass
class GraphAnalysis:
    """Result of ``analyze_graph``.

    nodes: {name: Node} in topological order. groups: list of Group (every prunable layer is in
    exactly one, singletons included). group_of: {prunable name: index into groups}.
    origin: {layer name: prunable layer whose retained filters index this layer's output
    channels, or None when the channels are never pruned (they come from the input)}.
    outputs: names of the model's output layers.
    """

    nodes: dict
    groups: list
    group_of: dict
    origin: dict
    outputs: list

    def group(self, layer_name):
        """The Group of a prunable layer."""
        return self.groups[self.group_of[layer_name]]


def _inbound_names(entry):
    nodes = entry.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise UnprunableModelError(
            f"layer {entry['name']!r} is used {len(nodes)} times (shared layer); pruning "
            "cannot handle shared layers"
        )
    if not nodes:
        return []
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3 style {"args": ...}: not produced by tf_keras
        raise UnprunableModelError(f"layer {entry['name']!r}: unsupported model config format")
    return [inbound[0] for inbound in node]


def _topological(entries):
    """Entries sorted so producers precede consumers (stable w.r.t. the config order)."""
    by_name = {entry["name"]: entry for entry in entries}
    done, ordered = set(), []
    pending = list(entries)
    while pending:
        progressed = False
        for entry in list(pending):
            if all(name in done for name in entry["_inputs"]):
                ordered.append(entry)
                done.add(entry["name"])
                pending.remove(entry)
                progressed = True
        if not progressed:
            missing = sorted({n for e in pending for n in e["_inputs"] if n not in by_name})
            detail = f"unknown inputs {missing}" if missing else "a cycle"
            raise UnprunableModelError(f"model config has {detail}")
    return ordered


def _channels(node_config, kind, class_name, name, input_channels):
    if kind == PRUNABLE_KIND:
        return int(node_config["filters"])
    if kind == INPUT_KIND:
        shape = node_config.get("batch_input_shape") or node_config.get("batch_shape")
        if not shape or shape[-1] is None:
            raise UnprunableModelError(f"input layer {name!r} has no known channel count")
        return int(shape[-1])
    if not input_channels:
        raise UnprunableModelError(f"layer {name!r} ({class_name}) has no input")
    if kind == PASS_KIND:
        return input_channels[0]
    return max(input_channels)


def parse_graph(model_config, rules=DEFAULT_RULES):
    """Return {name: Node} in topological order for a functional model config.

    Raises UnprunableModelError naming the layer for unknown layer types, shared layers,
    nested models, pass-through layers with several inputs.
    """
    if model_config.get("class_name") in ("Functional", "Model", "Sequential"):
        model_config = model_config["config"]
    entries = []
    for entry in model_config["layers"]:
        entry = dict(entry, _inputs=_inbound_names(entry))
        entries.append(entry)
    nodes = {}
    for entry in _topological(entries):
        name, class_name, config = entry["name"], entry["class_name"], entry.get("config", {})
        kind = rules.classify(name, class_name, config)
        if kind in (PRUNABLE_KIND, PASS_KIND) and len(entry["_inputs"]) != 1:
            raise UnprunableModelError(
                f"layer {name!r} ({class_name}) has {len(entry['_inputs'])} inputs; pruning "
                "expects exactly one"
            )
        input_channels = [nodes[n].channels for n in entry["_inputs"]]
        channels = _channels(config, kind, class_name, name, input_channels)
        nodes[name] = Node(name, class_name, kind, list(entry["_inputs"]), channels, config)
    return nodes


class _UnionFind:
    def __init__(self):
        self.parent = {}

    def add(self, item):
        self.parent.setdefault(item, item)

    def find(self, item):
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, first, second):
        self.parent[self.find(second)] = self.find(first)


def broadcast_inputs(nodes, node):
    """Inputs of an element-wise node that are broadcast (1 channel while others have more)."""
    if node.channels == 1:
        return []
    return [name for name in node.inputs if nodes[name].channels == 1]


def analyze_graph(model_config, excluded=(), rules=DEFAULT_RULES):
    """Trace channel origins and build the equalization groups of a functional model config.

    Args:
        model_config: functional model config dict.
        excluded: names of prunable layers that keep all their filters (``-el``).
        rules: LayerRules (which class is prunable, pass-through, element-wise).

    Returns:
        GraphAnalysis. The model outputs' origin groups are fixed (TAO excludes the output
        layers), as are groups with an excluded member or combined with the network input.
    """
    nodes = parse_graph(model_config, rules)
    config = model_config.get("config", model_config)
    outputs = [out[0] for out in config.get("output_layers", [])]
    origin, sets = {}, _UnionFind()
    fixed_reasons = {}  # prunable name -> reason
    for node in nodes.values():
        if node.kind == INPUT_KIND:
            origin[node.name] = None
        elif node.kind == PRUNABLE_KIND:
            sets.add(node.name)
            origin[node.name] = node.name
        elif node.kind == PASS_KIND:
            origin[node.name] = origin[node.inputs[0]]
        else:
            assert node.kind == ELEMENTWISE_KIND
            skip = set(broadcast_inputs(nodes, node))
            sources = [origin[name] for name in node.inputs if name not in skip]
            convs = [source for source in sources if source is not None]
            for conv in convs[1:]:
                sets.union(convs[0], conv)
            if convs and len(convs) < len(sources):
                fixed_reasons.setdefault(
                    convs[0], f"combined with the network input in {node.name!r}"
                )
            origin[node.name] = convs[0] if convs else None
    for name in outputs:
        source = origin.get(name)
        if source is not None:
            reason = "model output" if source == name else f"feeds model output {name!r}"
            fixed_reasons.setdefault(source, reason)
    for name in excluded:
        if name in sets.parent:
            fixed_reasons.setdefault(name, f"{name!r} is excluded")
    groups, group_of = [], {}
    for name in nodes:
        if name not in sets.parent:
            continue
        root = sets.find(name)
        if root not in group_of:
            group_of[root] = len(groups)
            groups.append(Group([]))
        group_of[name] = group_of[root]
        groups[group_of[root]].members.append(name)
    for name, reason in fixed_reasons.items():
        group = groups[group_of[name]]
        group.fixed = group.fixed or reason
    return GraphAnalysis(nodes, groups, group_of, origin, outputs)
