"""Structure of the DetectNet_v2 ResNets: layer names, counts, shapes, parameters, padding."""

import numpy as np
import pytest

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.modeling.detectnet import build_detectnet_v2


def conv_names(model):
    return {layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}


def test_resnet10_conv_names_without_projections():
    model = build_detectnet_v2(10, 1, (32, 32, 3))
    # One repeat per block, each the first of its block -> every block has a shortcut conv.
    expected = {"conv1", "output_cov", "output_bbox"} | {
        f"block_{b}a_{suffix}"
        for b in range(1, 5)
        for suffix in ("conv_1", "conv_2", "conv_shortcut")
    }
    assert conv_names(model) == expected
    assert model.name == "resnet10_nopool_bn_detectnet_v2"
    assert model.input.name.startswith("input_1") and model.layers[0].name == "input_1"
    assert [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)] == [
        "add_1",
        "add_2",
        "add_3",
        "add_4",
    ]


def test_resnet18_identity_repeats_have_no_shortcut_conv():
    model = build_detectnet_v2(18, 1, (32, 32, 3))
    names = conv_names(model)
    # 1 + 8 repeats x 2 convs + 4 projections (first repeat of each block) + 2 heads = 23.
    assert len(names) == 23
    for block in range(1, 5):
        assert f"block_{block}a_conv_shortcut" in names
        assert f"block_{block}b_conv_shortcut" not in names
        assert f"block_{block}b_bn_shortcut" not in {layer.name for layer in model.layers}
    layer_names = [layer.name for layer in model.layers]
    for name in (
        "bn_conv1",
        "activation_1",
        "block_1a_bn_1",
        "block_1a_relu_1",
        "block_1a_bn_2",
        "block_1a_bn_shortcut",
        "block_1a_relu",
        "block_4b_relu",
        "add_8",
    ):
        assert name in layer_names
    # The heads read the last backbone layer.
    assert model.get_layer("output_cov").input.name.startswith("block_4b_relu")


def test_resnet18_all_projections_adds_a_shortcut_on_every_repeat():
    model = build_detectnet_v2(18, 1, (32, 32, 3), all_projections=True)
    names = conv_names(model)
    assert len(names) == 27  # 23 + one projection on each of the 4 "b" repeats
    assert {f"block_{b}b_conv_shortcut" for b in range(1, 5)} <= names
    assert "block_2b_bn_shortcut" in {layer.name for layer in model.layers}


def test_without_batch_norm_there_is_no_bn_layer():
    model = build_detectnet_v2(10, 1, (32, 32, 3), use_batch_norm=False)
    assert model.name == "resnet10_nopool_detectnet_v2"
    assert not [ly for ly in model.layers if isinstance(ly, keras.layers.BatchNormalization)]


def test_output_shapes_have_stride_16(resnet18_384):
    assert resnet18_384.output_names == ["output_cov", "output_bbox"]
    assert resnet18_384.output_shape == [(None, 24, 24, 1), (None, 24, 24, 4)]
    # KITTI-sized 1248 wide x 384 high, 3 classes -> 78 x 24 grid, 12 bbox channels.
    wide = build_detectnet_v2(10, 3, (384, 1248, 3))
    assert wide.output_shape == [(None, 24, 78, 3), (None, 24, 78, 12)]


def test_resnet18_parameter_count(resnet18_384):
    # Hand count, 3 input channels, 1 class (conv = k*k*in*out + out, BN = 4*ch):
    # conv1 7*7*3*64+64 = 9472, bn_conv1 256                                  ->     9,728
    # block1: 1a 2*36928 + 2*256 + shortcut 4160 + 256 = 78784; 1b 74368      ->   153,152
    # block2: 2a 73856 + 147584 + 1024 + 8320 + 512 = 231296; 2b 296192        ->   527,488
    # block3: 3a 295168 + 590080 + 2048 + 33024 + 1024 = 921344; 3b 1182208    -> 2,103,552
    # block4: 4a 1180160 + 2359808 + 4096 + 131584 + 2048 = 3677696; 4b 4723712 -> 8,401,408
    # heads: output_cov 512+1 = 513, output_bbox 512*4+4 = 2052                ->     2,565
    # total 11,197,893; non-trainable = BN moving mean+var = 2 * 4864 channels = 9,728.
    assert resnet18_384.count_params() == 11_197_893
    non_trainable = sum(int(np.prod(w.shape)) for w in resnet18_384.non_trainable_weights)
    assert non_trainable == 9_728


def test_conv_defaults_match_tao(resnet18_384):
    conv = resnet18_384.get_layer("block_2a_conv_1")
    assert conv.use_bias and conv.kernel_size == (3, 3) and conv.strides == (2, 2)
    assert isinstance(conv.kernel_initializer, keras.initializers.GlorotUniform)
    bn = resnet18_384.get_layer("block_2a_bn_1")
    assert (bn.momentum, bn.epsilon) == (0.99, 1e-3)
    cov, bbox = resnet18_384.get_layer("output_cov"), resnet18_384.get_layer("output_bbox")
    assert cov.activation is keras.activations.sigmoid
    assert bbox.activation is keras.activations.linear
    assert cov.kernel_size == bbox.kernel_size == (1, 1)


@pytest.mark.parametrize("num_layers, features, num_convs", [(34, 512, 37 + 2), (50, 2048, 53 + 2)])
def test_deeper_resnets_build(num_layers, features, num_convs):
    model = build_detectnet_v2(num_layers, 2, (64, 64, 3))
    assert model.output_shape == [(None, 4, 4, 2), (None, 4, 4, 8)]
    assert model.get_layer("output_cov").input.shape[-1] == features
    # ResNet-34: conv1 + 16 repeats * 2 convs + 4 projections = 37 backbone convs (+ 2 heads);
    # ResNet-50: conv1 + 16 repeats * 3 convs + 4 projections = 53 backbone convs (+ 2 heads).
    assert len(conv_names(model)) == num_convs
    if num_layers == 50:
        # Bottleneck: 1x1 (stride 2 on the first repeat) -> 3x3 -> 1x1 with 4x width.
        assert model.get_layer("block_2a_conv_1").kernel_size == (1, 1)
        assert model.get_layer("block_2a_conv_1").strides == (2, 2)
        assert model.get_layer("block_2a_conv_3").filters == 512
        assert "block_3f_conv_3" in conv_names(model)


def test_stride2_convs_pad_symmetrically_like_tao():
    """conv1 equals a VALID conv on the input padded by 3 on every side (Caffe/TAO alignment)."""
    model = build_detectnet_v2(10, 1, (32, 32, 3))
    stem = keras.Model(model.input, model.get_layer("conv1").output)
    x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    kernel, bias = model.get_layer("conv1").get_weights()
    padded = np.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))
    expected = tf.nn.conv2d(padded, kernel, strides=2, padding="VALID").numpy() + bias
    np.testing.assert_allclose(stem(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    # TF's own SAME pads 2 before / 3 after for 7x7 stride 2 on 32 pixels: a different result.
    tf_same = tf.nn.conv2d(x, kernel, strides=2, padding="SAME").numpy() + bias
    assert np.abs(tf_same - expected).max() > 1e-3
    pads = [ly.name for ly in model.layers if isinstance(ly, keras.layers.ZeroPadding2D)]
    assert pads == [
        "conv1_pad",
        "block_1a_conv_1_pad",
        "block_2a_conv_1_pad",
        "block_3a_conv_1_pad",
    ]


def test_heads_can_attach_to_a_named_layer():
    model = build_detectnet_v2(18, 2, (32, 32, 3), cov_input="block_3b_relu")
    assert model.get_layer("output_cov").kernel.shape == (1, 1, 256, 2)
    assert model.get_layer("output_bbox").kernel.shape == (1, 1, 512, 8)
    with pytest.raises(SpecError, match=r"objective_set\.bbox\.input: 'block_3' must name exactly"):
        build_detectnet_v2(18, 2, (32, 32, 3), bbox_input="block_3")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "vgg"}, r"arch vgg is not supported \(supported: resnet\)"),
        ({"use_pooling": True}, r"use_pooling: true is not supported: .*stride 7"),
        ({"num_layers": 101}, r"ResNet-101 is not supported"),
        ({"freeze_blocks": (5,)}, r"freeze_blocks: \[5\]"),
    ],
)
def test_unsupported_settings_raise_clear_errors(kwargs, message):
    options = {"num_layers": 10, "num_classes": 1, "input_shape": (32, 32, 3), **kwargs}
    with pytest.raises(SpecError, match=message):
        build_detectnet_v2(**options)
