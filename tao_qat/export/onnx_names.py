"""Keras layer name -> ONNX tensor name map of an exported DetectNet_v2 graph (TAO §6 names).

The exporter (``export.onnx_export``) names every ONNX node and tensor after the TensorFlow op
that produced it with the model-name scope stripped, i.e. ``<keras_layer>/<tf_op>[:<i>]``
(``block_1a_relu_1/Relu:0``, ``add_1/add:0``, ``bn_conv1/FusedBatchNormV3:0``), like the TF
tensor names TAO writes into its calibration caches. The tensor that carries a layer's output
is the one tensor of the layer's scope that leaves the scope (is consumed by a node of another
layer, or is a graph output); the graph input carries the input layer (``input_1``).
QuantizeLinear / DequantizeLinear nodes are transparent, so the map of a Q/DQ model equals the
map of the float model it came from. TF-free: numpy and onnx only.
"""

from dataclasses import dataclass, field

import numpy as np

from tao_qat.common.errors import UsageError

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def layer_of(name):
    """Keras layer of a node or tensor name (``block_1a_relu_1/Relu:0`` -> ``block_1a_relu_1``),
    or None for tf2onnx helper names without a scope (``Transpose__12``)."""
    return name.split("/", 1)[0] if "/" in name else None


@dataclass(frozen=True)
class OnnxNames:
    """Where the Keras layers of a model live in its ONNX graph.

    Attributes:
        layer_tensors: {keras layer name: ONNX tensor carrying that layer's output}. Layers
            folded into a neighbour by the converter (``ZeroPadding2D`` -> Conv ``pads``) have
            no entry.
        conv_nodes: {conv layer name: name of its ONNX ``Conv`` node}.
        conv_kernels: {conv layer name: float initializer of its kernel, OIHW layout}.
        input_name: the graph input (NCHW).
        output_names: the graph outputs, in graph order.
        head_layers: layers whose output is a graph output (``output_cov``, ``output_bbox``).
    """

    layer_tensors: dict = field(default_factory=dict)
    conv_nodes: dict = field(default_factory=dict)
    conv_kernels: dict = field(default_factory=dict)
    input_name: str = ""
    output_names: tuple = ()
    head_layers: frozenset = frozenset()

    def tensor(self, layer_name):
        """ONNX tensor name carrying ``layer_name``'s output; UsageError if there is none."""
        try:
            return self.layer_tensors[layer_name]
        except KeyError:
            raise UsageError(
                f"layer {layer_name!r}: no tensor of its own in the ONNX graph (unknown layer, "
                f"or folded into a neighbour); {len(self.layer_tensors)} layers are mapped"
            ) from None


def _producers(graph):
    return {out: node for node in graph.node for out in node.output if out}


def _consumers(graph):
    users = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _through_qdq(name, users):
    """Nodes that consume ``name``, looking through Q -> DQ chains."""
    found = []
    for node in users.get(name, []):
        if node.op_type in QDQ_OPS:
            found.extend(_through_qdq(node.output[0], users))
        else:
            found.append(node)
    return found


def _kernel_initializer(name, producers, initializers):
    """The float initializer feeding a Conv weight input, through an optional Q -> DQ chain."""
    while name not in initializers and name in producers:
        node = producers[name]
        if node.op_type not in QDQ_OPS:
            return None
        name = node.input[0]
    return name if name in initializers else None


def build_name_map(onnx_model):
    """Return the OnnxNames of an ONNX model exported by ``export_onnx`` (float or Q/DQ).

    Args:
        onnx_model: onnx.ModelProto.
    """
    graph = onnx_model.graph
    users = _consumers(graph)
    producers = _producers(graph)
    outputs = [out.name for out in graph.output]
    initializers = {init.name for init in graph.initializer}
    inputs = [inp.name for inp in graph.input if inp.name not in initializers]
    if len(inputs) != 1:
        raise UsageError(f"ONNX graph has inputs {inputs}: expected exactly one image input")

    candidates = {inputs[0]: [inputs[0]]}
    conv_nodes, conv_kernels = {}, {}
    for node in graph.node:
        layer = layer_of(node.name)
        if node.op_type in QDQ_OPS or layer is None:
            continue
        if node.op_type == "Conv":
            conv_nodes[layer] = node.name
            kernel = _kernel_initializer(node.input[1], producers, initializers)
            if kernel is not None:
                conv_kernels[layer] = kernel
        for out in node.output:
            leaves = out in outputs or any(
                layer_of(user.name) != layer for user in _through_qdq(out, users)
            )
            if out and leaves:
                candidates.setdefault(layer, []).append(out)
    layer_tensors = {layer: found[0] for layer, found in candidates.items() if len(found) == 1}
    heads = frozenset(layer for layer, tensor in layer_tensors.items() if tensor in outputs)
    return OnnxNames(
        layer_tensors=layer_tensors,
        conv_nodes=conv_nodes,
        conv_kernels=conv_kernels,
        input_name=inputs[0],
        output_names=tuple(outputs),
        head_layers=heads,
    )


def as_name_map(onnx_model_or_map):
    """OnnxNames from an OnnxNames, an ``OnnxExport``, a {layer: tensor} dict or a ModelProto."""
    if isinstance(onnx_model_or_map, OnnxNames):
        return onnx_model_or_map
    names = getattr(onnx_model_or_map, "names", None)
    if isinstance(names, OnnxNames):
        return names
    if isinstance(onnx_model_or_map, dict):
        return OnnxNames(layer_tensors=dict(onnx_model_or_map))
    return build_name_map(onnx_model_or_map)


def tensor_for_layer(onnx_model_or_map, layer_name):
    """ONNX tensor name carrying the output of Keras layer ``layer_name``.

    Args:
        onnx_model_or_map: onnx.ModelProto, OnnxNames, OnnxExport or {layer: tensor} dict.
        layer_name: Keras layer name, e.g. ``"block_1a_relu_1"`` -> ``"block_1a_relu_1/Relu:0"``.

    Raises:
        UsageError: the layer has no tensor of its own in the graph.
    """
    return as_name_map(onnx_model_or_map).tensor(layer_name)


def expose_tensors(onnx_model, tensor_names):
    """Copy of ``onnx_model`` whose graph also outputs ``tensor_names`` (float32, any shape).

    For reading intermediate tensors with ONNX Runtime (calibration, parity tests).
    """
    import onnx

    exposed = onnx.ModelProto()
    exposed.CopyFrom(onnx_model)
    present = {out.name for out in exposed.graph.output}
    known = set(_producers(exposed.graph)) | {inp.name for inp in exposed.graph.input}
    for name in tensor_names:
        if name not in known:
            raise UsageError(f"tensor {name!r} is not produced in the ONNX graph")
        if name not in present:
            exposed.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
            present.add(name)
    return exposed


def initializer_array(onnx_model, name):
    """numpy copy of the initializer ``name`` of ``onnx_model``."""
    from onnx import numpy_helper

    for init in onnx_model.graph.initializer:
        if init.name == name:
            return np.array(numpy_helper.to_array(init))
    raise UsageError(f"initializer {name!r} is not in the ONNX graph")
