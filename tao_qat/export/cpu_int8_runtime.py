"""What ONNX Runtime (CPU) makes of a model: session options and the kernels of its optimized
graph, to check that a QDQ model really runs integer kernels (int8_calibration.md §6). TF-free.

ONNX Runtime rewrites ``DQ -> Conv -> Q`` groups into ``QLinearConv`` (and ``DQ -> Add -> Q``
into ``QLinearAdd``) while optimizing the session graph; ``optimized_model_filepath`` dumps the
result. A conv left as ``Conv`` / ``FusedConv`` runs in float.
"""

import collections
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Integer kernels ONNX Runtime fuses QDQ groups into, or that run integer arithmetic.
INTEGER_OPS = frozenset(
    {
        "QLinearConv",
        "ConvInteger",
        "MatMulInteger",
        "QLinearMatMul",
        "MatMulIntegerToFloat",
        "DynamicQuantizeLinear",
        "QLinearAdd",
        "QLinearMul",
        "QLinearConcat",
        "QLinearAveragePool",
        "QLinearGlobalAveragePool",
        "QLinearSigmoid",
        "QLinearLeakyRelu",
    }
)
INTEGER_CONV_OPS = frozenset({"QLinearConv", "ConvInteger"})
FLOAT_CONV_OPS = frozenset({"Conv", "FusedConv"})


def session_options(num_threads=2, *, optimized_model_path=None, allow_spinning=None, level="all"):
    """onnxruntime.SessionOptions for CPU inference.

    Args:
        num_threads: intra-op threads (inter-op 1, sequential execution).
        optimized_model_path: where ONNX Runtime writes the optimized graph, or None.
        allow_spinning: None keeps ONNX Runtime's default; False stops idle threads spinning
            (kinder to a shared machine, a little slower).
        level: "all" (ORT_ENABLE_ALL: QDQ fusion, NCHWc / NHWC layouts), "extended", "basic",
            "none" (the graph as written: Q/DQ run as separate float ops).
    """
    import onnxruntime as ort

    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
        options.log_severity_level = 3  # not the "hardware specific model" warning
    if allow_spinning is not None:
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
        )
    return options


def make_session(onnx_model, num_threads=2, **options):
    """onnxruntime.InferenceSession (CPU provider) of a ModelProto or a file path."""
    import onnxruntime as ort

    source = onnx_model if isinstance(onnx_model, str | Path) else onnx_model.SerializeToString()
    if isinstance(source, Path):
        source = str(source)
    return ort.InferenceSession(
        source, session_options(num_threads, **options), providers=["CPUExecutionProvider"]
    )


@dataclass(frozen=True)
class KernelCounts:
    """Node counts of ONNX Runtime's optimized graph.

    Attributes:
        ops: Counter {op_type: count} over all nodes.
        integer_convs: QLinearConv + ConvInteger nodes.
        float_convs: Conv + FusedConv nodes (any domain, e.g. NCHWc).
        integer_ops: nodes in INTEGER_OPS.
    """

    ops: collections.Counter

    @property
    def integer_convs(self):
        return sum(self.ops[op] for op in INTEGER_CONV_OPS)

    @property
    def float_convs(self):
        return sum(self.ops[op] for op in FLOAT_CONV_OPS)

    @property
    def integer_ops(self):
        return sum(self.ops[op] for op in INTEGER_OPS)


def optimized_graph(onnx_model, num_threads=2, level="all"):
    """The onnx.ModelProto ONNX Runtime runs after its graph optimizations (CPU provider)."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="tao_qat_ort_") as folder:
        path = Path(folder) / "optimized.onnx"
        make_session(onnx_model, num_threads, optimized_model_path=path, level=level)
        return onnx.load(str(path))


def count_kernels(onnx_model, num_threads=2, level="all"):
    """KernelCounts of the graph ONNX Runtime optimizes ``onnx_model`` (ModelProto or path) to."""
    graph = optimized_graph(onnx_model, num_threads, level).graph
    return KernelCounts(collections.Counter(node.op_type for node in graph.node))
