"""Names of QAT layers and classes, and how to recognise a quantized model config (TF-free).

A QAT model keeps the float layer names inside its wrappers: the float layer ``conv1`` becomes
the wrapper ``quant_conv1``, and the Q/DQ on the network input ``input_1`` is the layer
``quant_input_1``. Unquantized layers (e.g. ``output_cov`` / ``output_bbox``) keep their names.
"""

from tao_qat.quantization.graph import layer_name

QAT_LAYER_PREFIX = "quant_"
# Classes written by ``create_qat_model`` (keys of ``layers.QAT_CUSTOM_OBJECTS``).
OUR_QAT_CLASSES = frozenset(
    {
        "TrtQuantizeWrapper",
        "QuantizeLayer",
        "TrtQuantizeConfig",
        "SymmetricWeightQuantizer",
        "EmaActivationQuantizer",
    }
)
# Layer classes that mean "already quantized": ours, TFMOT's defaults, TAO's QAT layers.
QUANTIZED_LAYER_CLASSES = frozenset(
    {
        "TrtQuantizeWrapper",
        "QuantizeLayer",
        "QuantizeWrapper",
        "QuantizeWrapperV2",
        "QuantizeAnnotate",
        "QDQ",
        "QuantizedConv2D",
        "QuantizedConv2DTranspose",
        "QuantizedDepthwiseConv2D",
        "QuantizedDense",
    }
)


def qat_layer_name(float_name):
    """Name of the QAT layer that replaces (or follows, for an input) float layer ``float_name``."""
    return f"{QAT_LAYER_PREFIX}{float_name}"


def quantized_layers_in_config(model_config):
    """Names of the layers of a Keras model config whose class means "quantized" (may be [])."""
    return [
        layer_name(entry)
        for entry in model_config.get("config", model_config).get("layers", [])
        if entry.get("class_name") in QUANTIZED_LAYER_CLASSES
    ]


def is_qat_config(model_config):
    """True if a model config (``model.get_config()`` or an .hdf5 ``model_config``) is quantized."""
    return bool(quantized_layers_in_config(model_config))
