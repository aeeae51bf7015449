"""Float Keras DetectNet_v2 -> NCHW ONNX through tf2onnx, with TAO's tensor names (TAO §8, §2).

The ONNX graph presents NCHW like TAO: input ``input_1`` [N, C, H, W] (``N`` symbolic unless a
static batch size is given), outputs ``output_cov/Sigmoid`` [N, C_cls, Gh, Gw] and
``output_bbox/BiasAdd`` [N, 4*C_cls, Gh, Gw]. tf2onnx's ``inputs_as_nchw`` / ``outputs_as_nchw``
plus its transpose optimizer leave no Transpose node for the ResNet models: the whole graph runs
in NCHW. Conv+BatchNormalization folding is switched off so every Keras conv, BN, ReLU and Add
keeps a tensor of its own (TensorRT and ONNX Runtime fold BN themselves); ``ZeroPadding2D`` is
folded into the next Conv's ``pads``. Node and tensor names are tf2onnx's with the Keras model
scope stripped (``block_1a_relu_1/Relu:0``), see ``export.onnx_names``.
"""

import contextlib
import functools
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from tao_qat.common.errors import UsageError
from tao_qat.common.fileio import atomic_path, check_writable_output
from tao_qat.export.onnx_names import QDQ_OPS, OnnxNames, build_name_map, layer_of

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 13  # TAO's default is 12; per-channel QuantizeLinear (axis) needs >= 13
MIN_OPSET = 11
# Keras output layer -> ONNX graph output name (TAO's exporter lists these TF tensor names).
TAO_OUTPUT_NAMES = {"output_cov": "output_cov/Sigmoid", "output_bbox": "output_bbox/BiasAdd"}
BATCH_DIM = "N"
CATCH_ERRORS_ENV = "TF2ONNX_CATCH_ERRORS"
# Keras layer classes that must keep a tensor of their own in the ONNX graph.
MAPPED_LAYER_CLASSES = (
    "InputLayer",
    "Conv2D",
    "BatchNormalization",
    "FrozenBatchNormalization",
    "Activation",
    "ReLU",
    "Add",
)


@dataclass(frozen=True)
class OnnxExport:
    """An exported ONNX file and where the Keras layers live in it.

    Attributes:
        path: the written .onnx file.
        names: OnnxNames (layer -> tensor, conv -> kernel initializer, heads).
        opset: ONNX opset of the default domain.
        static_batch_size: the fixed batch dimension, or -1 for a symbolic ``N``.
    """

    path: Path
    names: OnnxNames
    opset: int
    static_batch_size: int = -1


def _keep_batchnorm_optimizers():
    """tf2onnx's default optimizer sequence with the Conv+BatchNormalization fusion disabled.

    The fusion is one handler of tf2onnx's back-to-back optimizer (a module-level table); it is
    taken out only while that optimizer runs, so other tf2onnx users are unaffected.
    """
    from tf2onnx import optimizer
    from tf2onnx.optimizer import back_to_back_optimizer as b2b

    fusion_key = ("Conv", "BatchNormalization")

    class BackToBackKeepingBatchNorm(b2b.BackToBackOptimizer):
        def _optimize_at_current_graph_level(self, g):
            handler = b2b._func_map.pop(fusion_key, None)
            try:
                return super()._optimize_at_current_graph_level(g)
            finally:
                if handler is not None:
                    b2b._func_map[fusion_key] = handler

    return OrderedDict(
        (name, BackToBackKeepingBatchNorm if factory is b2b.BackToBackOptimizer else factory)
        for name, factory in optimizer._get_optimizers().items()
    )


@contextlib.contextmanager
def _tf2onnx_catch_errors(enabled):
    """Set tf2onnx's TF2ONNX_CATCH_ERRORS inside the block. With it on (the default) tf2onnx
    deep-copies the whole graph, weights included, before each optimizer pass: a third of the
    conversion time of a ResNet-18."""
    saved = os.environ.get(CATCH_ERRORS_ENV)
    os.environ[CATCH_ERRORS_ENV] = "TRUE" if enabled else "FALSE"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(CATCH_ERRORS_ENV, None)
        else:
            os.environ[CATCH_ERRORS_ENV] = saved


def _rename_all(graph, rename):
    """Apply ``rename`` (old -> new) to every node, tensor and initializer name of ``graph``."""
    for node in graph.node:
        node.name = rename(node.name)
        node.input[:] = [rename(name) if name else name for name in node.input]
        node.output[:] = [rename(name) if name else name for name in node.output]
    for collection in (graph.input, graph.output, graph.value_info, graph.initializer):
        for item in collection:
            item.name = rename(item.name)


def _drop_noop_output_reshapes(onnx_model):
    """Remove a Reshape feeding a graph output when it keeps the shape.

    With one channel (a 1-class ``output_cov``) tf2onnx turns the NHWC -> NCHW output transpose
    into a Reshape to [-1, 1, Gh, Gw] that leaves the NCHW tensor unchanged; without it the
    head's own tensor (``output_cov/Sigmoid``) is the graph output, as for C > 1.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx_model.graph
    inferred = onnx.shape_inference.infer_shapes(onnx_model).graph
    shapes = {
        value.name: [dim.dim_value or None for dim in value.type.tensor_type.shape.dim]
        for value in list(inferred.value_info) + list(inferred.input)
    }
    initializers = {init.name: init for init in graph.initializer}
    outputs = {out.name for out in graph.output}
    for node in list(graph.node):
        if node.op_type != "Reshape" or node.output[0] not in outputs:
            continue
        if node.input[1] not in initializers or node.input[0] in outputs:
            continue
        target = numpy_helper.to_array(initializers[node.input[1]]).tolist()
        source = shapes.get(node.input[0])
        if source is None or len(source) != len(target) or source[1:] != target[1:]:
            continue
        if target[0] not in (-1, 0, source[0]):
            continue
        graph.node.remove(node)
        old, new = node.input[0], node.output[0]
        _rename_all(graph, lambda name, old=old, new=new: new if name == old else name)
        if not any(node.input[1] in other.input for other in graph.node):
            graph.initializer.remove(initializers[node.input[1]])


def _tao_names(onnx_model, model_scope):
    """Strip the Keras model scope from every name and give the heads TAO's output names."""
    prefix = f"{model_scope}/"
    outputs = {
        out.name: TAO_OUTPUT_NAMES.get(out.name, out.name) for out in onnx_model.graph.output
    }

    def rename(name):
        if name in outputs:
            return outputs[name]
        return name[len(prefix) :] if name.startswith(prefix) else name

    _rename_all(onnx_model.graph, rename)


def _adopt_unscoped_nodes(graph):
    """Give converter-made nodes a layer scope taken from their weights.

    tf2onnx merges ``ZeroPadding2D`` + ``Conv2D`` into a new node named ``Conv__<n>``; its
    kernel initializer (``conv1/Conv2D/ReadVariableOp:0``) still names the layer. Such a node is
    renamed ``<layer>/BiasAdd`` (``<layer>/Conv2D`` without bias), the TF op that ends a Keras
    conv, and its outputs ``<node>:<i>``.
    """
    initializers = {init.name for init in graph.initializer}
    taken = {node.name for node in graph.node}
    rename = {}
    for node in graph.node:
        if layer_of(node.name) is not None:
            continue
        weights = [name for name in node.input if name in initializers]
        if node.op_type == "Conv" and node.input[1] in initializers:
            weights = [node.input[1]]  # a deduplicated bias may carry another layer's scope
        scopes = {layer_of(name) for name in weights} - {None}
        if len(scopes) != 1:
            continue
        if node.op_type == "Conv":
            op = "BiasAdd" if len(node.input) > 2 else "Conv2D"
        else:
            op = node.op_type
        name = f"{scopes.pop()}/{op}"
        if name in taken:
            continue
        taken.add(name)
        node.name = name
        for i, out in enumerate(node.output):
            if out and out not in {o.name for o in graph.output}:
                rename[out] = f"{name}:{i}"
    _rename_all(graph, lambda name: rename.get(name, name))


def _set_batch_dim(onnx_model, static_batch_size):
    for value in list(onnx_model.graph.input) + list(onnx_model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if static_batch_size > 0:
            dim.dim_value = static_batch_size
        else:
            dim.dim_param = BATCH_DIM


def _check_input(model):
    if len(model.inputs) != 1:
        raise UsageError(f"model {model.name}: {len(model.inputs)} inputs; export needs one image")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or any(dim is None for dim in shape[1:]):
        raise UsageError(f"model {model.name}: input shape {shape} is not [B, H, W, C] (fixed)")
    return tuple(int(dim) for dim in shape[1:])


def _check_coverage(model, names):
    """Internal invariant: every input / conv / BN / ReLU / Add layer has its own tensor."""
    missing = [
        layer.name
        for layer in model.layers
        if type(layer).__name__ in MAPPED_LAYER_CLASSES and layer.name not in names.layer_tensors
    ]
    if missing:
        raise RuntimeError(f"ONNX export lost the output tensors of layers {missing[:8]}")


def convert_keras_to_onnx(model, *, static_batch_size=-1, opset=DEFAULT_OPSET):
    """Convert a float tf_keras model (NHWC) to an NCHW onnx.ModelProto in memory.

    Args:
        model: functional keras.Model, input [B, H, W, C] (fixed H, W, C), no fake-quant layers
            (peel QAT out first).
        static_batch_size: > 0 fixes the batch dimension; -1 (TAO's default) leaves it symbolic.
        opset: ONNX opset (>= 11; 13 needed later for per-channel Q/DQ).

    Returns:
        (onnx.ModelProto, OnnxNames).
    """
    import tf2onnx

    from tao_qat.common.tensorflow_setup import tf

    if opset < MIN_OPSET:
        raise UsageError(f"--target_opset {opset}: must be >= {MIN_OPSET} (13 for INT8 Q/DQ)")
    if static_batch_size == 0 or static_batch_size < -1:
        raise UsageError(f"--static_batch_size {static_batch_size}: must be -1 or > 0")
    height, width, channels = _check_input(model)
    input_name = model.inputs[0].name.split(":")[0]
    batch = static_batch_size if static_batch_size > 0 else None
    spec = (tf.TensorSpec((batch, height, width, channels), tf.float32, name=input_name),)
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    convert = functools.partial(
        tf2onnx.convert.from_keras,
        model,
        input_signature=spec,
        opset=opset,
        inputs_as_nchw=[input_name],
        outputs_as_nchw=list(model.output_names),
        optimizers=_keep_batchnorm_optimizers(),
    )
    try:
        with _tf2onnx_catch_errors(False):
            onnx_model, _ = convert()
    except Exception:  # an optimizer failed: redo with tf2onnx skipping failed optimizers
        logger.debug("tf2onnx optimizer failed; converting again with errors caught")
        onnx_model, _ = convert()
    quantized = [node.name for node in onnx_model.graph.node if node.op_type in QDQ_OPS]
    if quantized:
        raise UsageError(
            f"model {model.name}: has fake-quant layers ({quantized[0]}); export the float "
            "model (QAT peel-out) and add Q/DQ with export.qdq.insert_qdq"
        )
    _drop_noop_output_reshapes(onnx_model)
    _tao_names(onnx_model, model.name)
    _adopt_unscoped_nodes(onnx_model.graph)
    _set_batch_dim(onnx_model, static_batch_size)
    onnx_model.doc_string = f"tao_qat export of Keras model {model.name} (NCHW)"
    names = build_name_map(onnx_model)
    _check_coverage(model, names)
    return onnx_model, names


def check_onnx(onnx_model):
    """onnx.checker with full shape inference (raises onnx.checker.ValidationError)."""
    import onnx

    onnx.checker.check_model(onnx_model, full_check=True)


def save_onnx(onnx_model, path, *, force=False):
    """Write ``onnx_model`` to ``path`` atomically; refuse to overwrite without ``force``."""
    import onnx

    path = check_writable_output(path, force)
    with atomic_path(path) as tmp:
        onnx.save_model(onnx_model, str(tmp))
    return path


def export_onnx(model, path, *, static_batch_size=-1, opset=DEFAULT_OPSET, force=False):
    """Export a float Keras DetectNet_v2 to an NCHW ONNX file with TAO's names.

    Args:
        model: float keras.Model, input ``input_1`` [B, H, W, C], outputs ``output_cov`` /
            ``output_bbox`` (other models export too; their outputs keep their layer names).
        path: destination .onnx file.
        static_batch_size: > 0 fixes the batch dimension; -1 = dynamic (``N``).
        opset: ONNX opset (default 13).
        force: overwrite an existing file.

    Returns:
        OnnxExport(path, names, opset, static_batch_size).
    """
    check_writable_output(path, force)
    onnx_model, names = convert_keras_to_onnx(
        model, static_batch_size=static_batch_size, opset=opset
    )
    check_onnx(onnx_model)
    path = save_onnx(onnx_model, path, force=force)
    logger.info("wrote %s (opset %d, %d layers mapped)", path, opset, len(names.layer_tensors))
    return OnnxExport(path=path, names=names, opset=opset, static_batch_size=static_batch_size)
