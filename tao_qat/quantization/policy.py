"""Q/DQ placement policy for TensorRT INT8, as a table of named rules (TF-free).

Reference: int8_calibration.md §0 (symmetric INT8) and §4.1 (TensorRT Q/DQ placement),
tao_detectnet_v2.md §6 (TAO's QAT). QAT (``quantization.qat``) and the exporter's Q/DQ
insertion share this module: ``plan_quantization(model_config, policy)`` decides, for every
layer of a functional model config, whether its weights are fake-quantized and whether its
output carries one activation Q/DQ. Rules are rows; for each layer and target (``weights`` /
``output``) the first row whose predicate matches decides. docs/quantization.md lists them.
"""

import dataclasses
from collections.abc import Callable

from tao_qat.common.errors import UsageError
from tao_qat.quantization.graph import LayerGraph

# Layers that compute with weights TensorRT quantizes: class -> (weight attribute, axes reduced
# to get one amax per output channel of the Keras kernel).
WEIGHTED_LAYERS = {
    "Conv2D": ("kernel", (0, 1, 2)),  # [kh, kw, C_in, C_out]
    "Dense": ("kernel", (0,)),  # [C_in, C_out]
    "Conv2DTranspose": ("kernel", (0, 1, 3)),  # [kh, kw, C_out, C_in]
    "DepthwiseConv2D": ("depthwise_kernel", (0, 1)),  # [kh, kw, C_in, mult]
}
BATCH_NORM_LAYERS = frozenset({"BatchNormalization", "FrozenBatchNormalization"})
ACTIVATION_LAYERS = frozenset({"Activation", "ReLU", "LeakyReLU", "ELU", "PReLU"})
RESIDUAL_LAYERS = frozenset({"Add"})
# Layers TensorRT moves Q/DQ across (it only reorders / copies values): no Q/DQ of their own.
COMMUTING_LAYERS = frozenset(
    {
        "ZeroPadding2D",
        "Cropping2D",
        "MaxPooling2D",
        "GlobalMaxPooling2D",
        "UpSampling2D",
        "Reshape",
        "Flatten",
        "Permute",
        "Concatenate",
        "Dropout",
        "SpatialDropout2D",
    }
)
# Heads that are never quantized (regression and probability outputs, TAO §6).
ALWAYS_FLOAT_LAYERS = ("output_cov", "output_bbox")

WEIGHTS, OUTPUT = "weights", "output"


@dataclasses.dataclass(frozen=True)
class RuleContext:
    """What a rule predicate sees: the graph and the set of layers that stay float."""

    graph: LayerGraph
    float_layers: frozenset


@dataclasses.dataclass(frozen=True)
class PlacementRule:
    """One row of the placement table.

    name: identifier shown in plans and docs; target: ``"weights"`` or ``"output"``;
    quantize: decision when the row matches; pattern: the layer pattern in words;
    why: the TensorRT reason; applies: predicate ``(RuleContext, LayerNode) -> bool``.
    """

    name: str
    target: str
    quantize: bool
    pattern: str
    why: str
    applies: Callable


def _is_float(ctx, node):
    return node.name in ctx.float_layers


def _only_float_consumers(ctx, node):
    consumers = ctx.graph.effective_consumers(node, COMMUTING_LAYERS)
    return bool(consumers) and all(c.name in ctx.float_layers for c in consumers)


def _is_input(ctx, node):
    return node.class_name == "InputLayer"


def _is_commuting(ctx, node):
    return node.class_name in COMMUTING_LAYERS


def _fused_into_consumer(ctx, node):
    producers = set(WEIGHTED_LAYERS) | BATCH_NORM_LAYERS | RESIDUAL_LAYERS
    consumers = ctx.graph.consumers(node)
    return (
        node.class_name in producers
        and len(consumers) == 1
        and consumers[0].class_name in BATCH_NORM_LAYERS | ACTIVATION_LAYERS
    )


def _conv_pattern(ctx, node):
    """Conv, or BN fed by a conv that nothing else reads, with this Add as only consumer."""
    if len(node.consumers) != 1:
        return False
    if node.class_name in WEIGHTED_LAYERS:
        return True
    if node.class_name in BATCH_NORM_LAYERS and len(node.inputs) == 1:
        producer = ctx.graph[node.inputs[0]]
        return producer.class_name in WEIGHTED_LAYERS and len(producer.consumers) == 1
    return False


def fused_residual_input(ctx, add_node):
    """Name of the Add input TensorRT fuses the Add into: its first conv-pattern input, or None."""
    for producer in ctx.graph.producers(add_node):
        if _conv_pattern(ctx, producer):
            return producer.name
    return None


def _is_fused_residual_branch(ctx, node):
    consumers = ctx.graph.consumers(node)
    return (
        len(consumers) == 1
        and consumers[0].class_name in RESIDUAL_LAYERS
        and consumers[0].name not in ctx.float_layers
        and fused_residual_input(ctx, consumers[0]) == node.name
    )


def _feeds_residual(ctx, node):
    return any(
        c.class_name in RESIDUAL_LAYERS and c.name not in ctx.float_layers
        for c in ctx.graph.consumers(node)
    )


def _is_activation(ctx, node):
    return node.class_name in ACTIVATION_LAYERS


def _is_weighted(ctx, node):
    return node.class_name in WEIGHTED_LAYERS


def _always(ctx, node):
    return True


DEFAULT_RULES = (
    PlacementRule(
        name="float_layer_weights",
        target=WEIGHTS,
        quantize=False,
        pattern="excluded layers and model outputs (output_cov, output_bbox)",
        why="regression / probability heads need more range and precision than INT8; TensorRT "
        "runs them in FP16/FP32",
        applies=_is_float,
    ),
    PlacementRule(
        name="weighted_op_weights",
        target=WEIGHTS,
        quantize=True,
        pattern="Conv2D, Dense, Conv2DTranspose, DepthwiseConv2D",
        why="TensorRT quantizes every input of a weighted op, the weights included (per output "
        "channel: axis 0 of KCRS)",
        applies=_is_weighted,
    ),
    PlacementRule(
        name="no_weight_quantization",
        target=WEIGHTS,
        quantize=False,
        pattern="every other layer (BatchNormalization, activations, merges)",
        why="BN is folded into the conv by TensorRT and never fake-quantized; other layers have "
        "no weights",
        applies=_always,
    ),
    PlacementRule(
        name="float_layer_output",
        target=OUTPUT,
        quantize=False,
        pattern="excluded layers and model outputs (output_cov, output_bbox)",
        why="model outputs are consumed in float (coverage probabilities, bbox regression)",
        applies=_is_float,
    ),
    PlacementRule(
        name="float_consumers_only",
        target=OUTPUT,
        quantize=False,
        pattern="a layer whose consumers (seen through commuting layers) are all float layers",
        why="a Q/DQ feeding only float layers adds rounding error and no INT8 kernel (e.g. the "
        "feature map read by the heads)",
        applies=_only_float_consumers,
    ),
    PlacementRule(
        name="network_input",
        target=OUTPUT,
        quantize=True,
        pattern="InputLayer",
        why="the first conv needs INT8 data; TensorRT's calibration cache keys the input tensor",
        applies=_is_input,
    ),
    PlacementRule(
        name="commuting_layer",
        target=OUTPUT,
        quantize=False,
        pattern="ZeroPadding2D, MaxPooling2D, Reshape, Concatenate, Dropout, ...",
        why="TensorRT moves Q/DQ across layers that only move values; upstream Q/DQ cover them",
        applies=_is_commuting,
    ),
    PlacementRule(
        name="fused_into_consumer",
        target=OUTPUT,
        quantize=False,
        pattern="Conv / BN / Add whose only consumer is a BN or an activation",
        why="TensorRT fuses Conv+BN+ReLU and Conv+Add+ReLU into one kernel; never put Q/DQ "
        "between conv, BN and ReLU",
        applies=_fused_into_consumer,
    ),
    PlacementRule(
        name="residual_fused_branch",
        target=OUTPUT,
        quantize=False,
        pattern="first Add input that is Conv or Conv->BN read only by the Add (the main branch)",
        why="TensorRT fuses the Add (and its ReLU) into this conv as an epilogue; the tensor "
        "never leaves the kernel",
        applies=_is_fused_residual_branch,
    ),
    PlacementRule(
        name="residual_input",
        target=OUTPUT,
        quantize=True,
        pattern="every other Add input (projection bn_shortcut, identity shortcut)",
        why="the fused Conv+Add runs in INT8 only if the other Add input is INT8 (identity "
        "shortcuts are already quantized at the upstream ReLU)",
        applies=_feeds_residual,
    ),
    PlacementRule(
        name="block_output",
        target=OUTPUT,
        quantize=True,
        pattern="Activation / ReLU / LeakyReLU / ELU / PReLU (end of Conv-BN-ReLU)",
        why="one Q/DQ on the output of each fused block: the INT8 input of the next convs",
        applies=_is_activation,
    ),
    PlacementRule(
        name="other_layer_output",
        target=OUTPUT,
        quantize=True,
        pattern="any other layer (Add without a following activation, AveragePooling2D, ...)",
        why="non-commuting layers run in INT8 with quantized outputs, as in TAO's QAT",
        applies=_always,
    ),
)


@dataclasses.dataclass(frozen=True)
class QuantizationPolicy:
    """How a float model becomes a QAT model (plain values; the spec adapter fills them).

    rules: placement table (first matching row per layer and target decides).
    per_channel_weights: one weight amax per output channel (else one per tensor, as TAO).
    excluded_layers: layer names kept float (weights and output) besides ALWAYS_FLOAT_LAYERS.
    ema_decay: decay of the zero-debiased moving average of activation amax (TAO: 0.999).
    initial_amax: activation amax before the first training step / calibration (TAO: 6.0).
    """

    rules: tuple = DEFAULT_RULES
    per_channel_weights: bool = True
    excluded_layers: tuple = ()
    ema_decay: float = 0.999
    initial_amax: float = 6.0

    def __post_init__(self):
        if not 0.0 < self.ema_decay < 1.0:
            raise UsageError(f"ema_decay: {self.ema_decay} must be in (0, 1)")
        if not self.initial_amax > 0.0:
            raise UsageError(f"initial_amax: {self.initial_amax} must be > 0")
        object.__setattr__(self, "excluded_layers", tuple(self.excluded_layers))
        for rule in self.rules:
            if rule.target not in (WEIGHTS, OUTPUT):
                raise UsageError(
                    f"rule {rule.name!r}: target {rule.target!r} not in weights/output"
                )


@dataclasses.dataclass(frozen=True)
class LayerDecision:
    """Decision for one layer: quantize weights / output, and the rule rows that decided."""

    quantize_weights: bool
    quantize_output: bool
    weights_rule: str
    output_rule: str


@dataclasses.dataclass(frozen=True)
class QuantizationPlan:
    """Result of ``plan_quantization``: ``decisions`` {layer name: LayerDecision} in graph order."""

    decisions: dict

    @property
    def activation_layers(self):
        """Names of the layers whose output carries a Q/DQ (in graph order)."""
        return tuple(n for n, d in self.decisions.items() if d.quantize_output)

    @property
    def weight_layers(self):
        """Names of the layers whose weights are fake-quantized (in graph order)."""
        return tuple(n for n, d in self.decisions.items() if d.quantize_weights)

    def table(self):
        """Rows (layer, weights rule, output rule) of the quantized layers, for logs and docs."""
        return [
            (name, d.weights_rule if d.quantize_weights else "-", d.output_rule)
            for name, d in self.decisions.items()
            if d.quantize_weights or d.quantize_output
        ]


def _decide(rules, target, ctx, node):
    for rule in rules:
        if rule.target == target and rule.applies(ctx, node):
            return rule
    raise UsageError(f"layer {node.name!r}: no {target} rule of the quantization policy matches")


def plan_quantization(model_config, policy=None):
    """Decide weight and activation quantization of every layer of a functional model config.

    Args:
        model_config: ``model.get_config()`` dict of a float functional model.
        policy: QuantizationPolicy (default: QuantizationPolicy()).

    Returns:
        QuantizationPlan. Raises UsageError naming an excluded layer that does not exist.
    """
    policy = policy or QuantizationPolicy()
    graph = LayerGraph(model_config)
    unknown = [name for name in policy.excluded_layers if name not in graph.nodes]
    if unknown:
        raise UsageError(
            f"excluded_layers: {', '.join(map(repr, unknown))} is not a layer of model "
            f"{model_config.get('name', '?')!r}"
        )
    float_layers = frozenset(
        [*policy.excluded_layers, *graph.output_names]
        + [name for name in ALWAYS_FLOAT_LAYERS if name in graph.nodes]
    )
    ctx = RuleContext(graph, float_layers)
    decisions = {}
    for node in graph:
        weights_rule = _decide(policy.rules, WEIGHTS, ctx, node)
        output_rule = _decide(policy.rules, OUTPUT, ctx, node)
        decisions[node.name] = LayerDecision(
            quantize_weights=weights_rule.quantize and node.class_name in WEIGHTED_LAYERS,
            quantize_output=output_rule.quantize,
            weights_rule=weights_rule.name,
            output_rule=output_rule.name,
        )
    return QuantizationPlan(decisions)
