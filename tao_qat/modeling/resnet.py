"""ResNet-10/18/34/50 backbones built as TAO's DetectNet_v2 template (tao_detectnet_v2.md §2).

NHWC, no max-pool (``use_pooling: false``): conv1 7x7/2 -> 4 blocks with strides 2, 2, 2, 1, so
the feature map is the input divided by 16. Layer names follow TAO (``conv1``, ``bn_conv1``,
``block_1a_conv_1``, ``block_1a_bn_1``, ``block_1a_relu_1``, ..., ``block_1a_conv_shortcut``,
``block_1a_bn_shortcut``, ``block_1a_relu``); the conv1 ReLU and the residual Adds get the names
TAO's Keras gives them in a fresh session (``activation_1``, ``add_1``, ``add_2``, ...) so they
are deterministic here.
"""

import string

from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.layers import FrozenBatchNormalization

# num_layers -> (repeats of each of the 4 blocks, bottleneck?)
RESNET_LAYOUTS = {
    10: ((1, 1, 1, 1), False),
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
}
BLOCK_WIDTHS = (64, 128, 256, 512)
BLOCK_STRIDES = (2, 2, 2, 1)  # use_pooling false: output stride 2 (conv1) * 2 * 2 * 2 = 16
OUTPUT_STRIDE = 16
FREEZABLE_BLOCKS = (0, 1, 2, 3, 4)  # 0 = conv1, k = block_k


def subblock_layout(width, bottleneck):
    """Return the (kernel size, filters) of the convs of one repeat of a block."""
    if bottleneck:
        return ((1, width), (3, width), (1, 4 * width))
    return ((3, width), (3, width))


class _Builder:
    """Holds the options shared by every layer of one backbone and the Add counter."""

    def __init__(
        self,
        use_batch_norm,
        all_projections,
        freeze_blocks,
        freeze_bn,
        kernel_regularizer,
        bias_regularizer,
        symmetric_padding,
    ):
        self.use_batch_norm = use_batch_norm
        self.all_projections = all_projections
        self.freeze_blocks = frozenset(freeze_blocks)
        self.freeze_bn = freeze_bn
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer
        self.symmetric_padding = symmetric_padding
        self.num_adds = 0

    def conv(self, x, filters, kernel, stride, name, block, padding="same"):
        """Conv2D with bias, glorot_uniform; stride-2 'same' convs padded symmetrically."""
        if padding == "same" and stride > 1 and kernel > 1 and self.symmetric_padding:
            # TAO/Caffe alignment: pad (k - 1) // 2 on every side, then a VALID conv.
            pad = (kernel - 1) // 2
            x = keras.layers.ZeroPadding2D(padding=pad, name=f"{name}_pad")(x)
            padding = "valid"
        return keras.layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding=padding,
            use_bias=True,
            kernel_initializer="glorot_uniform",
            bias_initializer="zeros",
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            trainable=block not in self.freeze_blocks,
            name=name,
        )(x)

    def batch_norm(self, x, name):
        if not self.use_batch_norm:
            return x
        cls = FrozenBatchNormalization if self.freeze_bn else keras.layers.BatchNormalization
        return cls(axis=-1, momentum=0.99, epsilon=1e-3, name=name)(x)

    def add(self, tensors):
        self.num_adds += 1
        return keras.layers.Add(name=f"add_{self.num_adds}")(tensors)


def _repeat(builder, x, block, letter, stride, layout, project):
    """One residual repeat: convs (BN, ReLU between) + shortcut, Add, ReLU."""
    prefix = f"block_{block}{letter}_"
    shortcut = x
    for i, (kernel, filters) in enumerate(layout, start=1):
        x = builder.conv(x, filters, kernel, stride if i == 1 else 1, f"{prefix}conv_{i}", block)
        x = builder.batch_norm(x, f"{prefix}bn_{i}")
        if i < len(layout):
            x = keras.layers.Activation("relu", name=f"{prefix}relu_{i}")(x)
    if project:
        filters = layout[-1][1]
        shortcut = builder.conv(
            shortcut, filters, 1, stride, f"{prefix}conv_shortcut", block, padding="valid"
        )
        shortcut = builder.batch_norm(shortcut, f"{prefix}bn_shortcut")
    x = builder.add([x, shortcut])
    return keras.layers.Activation("relu", name=f"{prefix}relu")(x)


def resnet_backbone(
    inputs,
    num_layers,
    *,
    use_batch_norm=True,
    all_projections=False,
    freeze_blocks=(),
    freeze_bn=False,
    kernel_regularizer=None,
    bias_regularizer=None,
    symmetric_padding=True,
):
    """Apply a TAO ResNet (no pooling) to ``inputs``; return the feature tensor.

    Args:
        inputs: Keras tensor [B, H, W, C].
        num_layers: 10, 18, 34 or 50.
        use_batch_norm: BN after every conv.
        all_projections: 1x1 projection conv on every shortcut (else only on the first repeat
            of each block, where stride or width changes).
        freeze_blocks: block ids whose convs are not trainable (0 = conv1, 1..4 = block_k).
        freeze_bn: BN layers always use their moving statistics (FrozenBatchNormalization).
        kernel_regularizer, bias_regularizer: Keras regularizers for every conv (or None).
        symmetric_padding: stride-2 convs use explicit symmetric zero-padding + VALID conv
            (TAO/Caffe alignment) instead of TF's asymmetric SAME.

    Returns:
        Keras tensor [B, H/16, W/16, 512] (2048 for ResNet-50), output of ``block_4<x>_relu``.
    """
    if num_layers not in RESNET_LAYOUTS:
        raise ValueError(f"num_layers {num_layers} not in {sorted(RESNET_LAYOUTS)}")
    repeats, bottleneck = RESNET_LAYOUTS[num_layers]
    builder = _Builder(
        use_batch_norm,
        all_projections,
        freeze_blocks,
        freeze_bn,
        kernel_regularizer,
        bias_regularizer,
        symmetric_padding,
    )
    x = builder.conv(inputs, 64, 7, 2, "conv1", block=0)
    x = builder.batch_norm(x, "bn_conv1")
    x = keras.layers.Activation("relu", name="activation_1")(x)
    for block, (count, width, stride) in enumerate(
        zip(repeats, BLOCK_WIDTHS, BLOCK_STRIDES, strict=True), start=1
    ):
        layout = subblock_layout(width, bottleneck)
        for r in range(count):
            x = _repeat(
                builder,
                x,
                block,
                string.ascii_lowercase[r],
                stride if r == 0 else 1,
                layout,
                project=all_projections or r == 0,
            )
    return x


def block_of_layer(name):
    """Return the freeze-block id of a backbone layer name (0 for conv1, k for block_k_*)."""
    if name in ("conv1", "conv1_pad", "bn_conv1"):
        return 0
    if name.startswith("block_") and len(name) > 6 and name[6].isdigit():
        return int(name[6])
    return None
