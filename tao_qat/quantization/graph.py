"""Read-only view of a functional Keras model config as a layer graph (TF-free).

The placement policy (``quantization.policy``) and the Q/DQ inserter of the exporter reason
about producers and consumers of layer outputs; this module gives them that graph from the
config dict of ``model.get_config()`` (or the JSON stored in an .hdf5) without TensorFlow.
"""

import dataclasses

from tao_qat.common.errors import UsageError


@dataclasses.dataclass(frozen=True)
class LayerNode:
    """One layer of the graph.

    name: Keras layer name; class_name: Keras class (e.g. ``Conv2D``); config: the layer's
    config dict; inputs: names of the producer layers in call order (an Add's inputs keep
    their order); consumers: names of the layers reading this layer's output, in config order.
    """

    name: str
    class_name: str
    config: dict
    inputs: tuple
    consumers: tuple


def is_node_reference(value):
    """True for a serialized node reference ``[layer_name, node_index, tensor_index(, kwargs)]``."""
    return (
        isinstance(value, list)
        and len(value) in (3, 4)
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def node_references(value):
    """Yield every node reference inside the nested lists/dicts of ``inbound_nodes`` data."""
    if is_node_reference(value):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from node_references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from node_references(item)


def layer_name(entry):
    """Name of a layer entry of a model config."""
    return entry.get("name") or entry["config"]["name"]


class LayerGraph:
    """Producers / consumers of every layer of a flat functional model config.

    Args:
        model_config: ``model.get_config()`` of a functional model (``layers``,
            ``input_layers``, ``output_layers``); nested models and shared layers (a layer
            called more than once) are refused with UsageError.
    """

    def __init__(self, model_config):
        if not isinstance(model_config, dict) or "layers" not in model_config:
            raise UsageError("quantization needs a functional Keras model (got no layer graph)")
        entries = model_config["layers"]
        consumers = {layer_name(entry): [] for entry in entries}
        inputs = {}
        for entry in entries:
            name = layer_name(entry)
            if entry.get("class_name") in ("Functional", "Model", "Sequential"):
                raise UsageError(f"layer {name!r}: nested models are not supported by QAT")
            nodes = entry.get("inbound_nodes") or []
            if len(nodes) > 1:
                raise UsageError(
                    f"layer {name!r} is called {len(nodes)} times (shared layer); QAT does not "
                    "support shared layers"
                )
            inputs[name] = tuple(ref[0] for ref in node_references(nodes))
            for producer in inputs[name]:
                if producer not in consumers:
                    raise UsageError(f"layer {name!r} reads unknown layer {producer!r}")
                if name not in consumers[producer]:
                    consumers[producer].append(name)
        self.nodes = {
            layer_name(entry): LayerNode(
                name=layer_name(entry),
                class_name=entry["class_name"],
                config=entry.get("config", {}),
                inputs=inputs[layer_name(entry)],
                consumers=tuple(consumers[layer_name(entry)]),
            )
            for entry in entries
        }
        self.input_names = tuple(ref[0] for ref in node_references(model_config["input_layers"]))
        self.output_names = tuple(ref[0] for ref in node_references(model_config["output_layers"]))

    def __getitem__(self, name):
        return self.nodes[name]

    def __iter__(self):
        return iter(self.nodes.values())

    def producers(self, node):
        """LayerNodes feeding ``node`` (in call order)."""
        return [self.nodes[name] for name in node.inputs]

    def consumers(self, node):
        """LayerNodes reading ``node``'s output."""
        return [self.nodes[name] for name in node.consumers]

    def effective_consumers(self, node, transparent):
        """Consumers of ``node``'s output, looking through layers of the ``transparent`` classes.

        A transparent layer (e.g. ZeroPadding2D) that is itself a model output counts as a
        consumer. Returns a list of LayerNodes without duplicates.
        """
        found, stack, seen = [], list(self.consumers(node)), set()
        while stack:
            consumer = stack.pop(0)
            if consumer.name in seen:
                continue
            seen.add(consumer.name)
            if consumer.class_name in transparent and consumer.name not in self.output_names:
                stack.extend(self.consumers(consumer))
            else:
                found.append(consumer)
        return found
