"""Predictors: run a DetectNet_v2 model on a batch of images and return numpy outputs.

Every predictor maps images float32 [B, H, W, C] (RGB in [0, 1], NHWC) to
(cov float32 [B, Gh, Gw, C_cls], bbox float32 [B, Gh, Gw, 4*C_cls]), so postprocessing and
evaluation score Keras, ONNX Runtime and TensorRT models with the same code.
"""

from pathlib import Path

import numpy as np

from tao_qat.common.errors import UsageError


def output_indices(output_names):
    """Indices (cov, bbox) of the outputs whose names contain 'cov' / 'bbox' (TAO looks outputs
    up by name, never by position)."""
    cov = [i for i, name in enumerate(output_names) if "cov" in name]
    bbox = [i for i, name in enumerate(output_names) if "bbox" in name]
    if len(cov) != 1 or len(bbox) != 1:
        raise UsageError(
            f"model outputs {list(output_names)}: expected one 'output_cov' and one 'output_bbox'"
        )
    return cov[0], bbox[0]


class KerasPredictor:
    """A tf_keras DetectNet_v2 model in inference mode.

    Args:
        model: keras.Model with outputs named ``output_cov*`` and ``output_bbox*``.
    """

    def __init__(self, model):
        from tao_qat.common.tensorflow_setup import tf

        self.model = model
        self._cov, self._bbox = output_indices(model.output_names)
        self.input_shape = tuple(int(v) for v in model.input_shape[1:])  # (H, W, C)
        self._run = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, images):
        outputs = self._run(np.asarray(images, np.float32))
        return outputs[self._cov].numpy(), outputs[self._bbox].numpy()


FRAMEWORK_BY_SUFFIX = {".onnx": "onnx", ".engine": "tensorrt", ".trt": "tensorrt"}


def framework_of(model_path):
    """The framework of a model file from its suffix: onnx, tensorrt, else tlt (Keras)."""
    return FRAMEWORK_BY_SUFFIX.get(Path(model_path).suffix.lower(), "tlt")


def load_predictor(model_path, framework=None, key=None):
    """Build the predictor for a model file.

    Args:
        model_path: .hdf5 Keras model (framework "tlt", TAO's name for its own models) or an
            exported .onnx model (framework "onnx", FP32 or Q/DQ INT8, run by ONNX Runtime).
        framework: "tlt", "onnx" or "tensorrt" (a serialized .engine/.trt, needs TensorRT and
            an NVIDIA GPU); None: from the file suffix (``framework_of``).
        key: passphrase of an encrypted model (see modeling.model_io).
    """
    framework = framework or framework_of(model_path)
    if framework == "tlt":
        from tao_qat.modeling.model_io import load_model_file

        return KerasPredictor(load_model_file(model_path, key=key))
    if framework == "onnx":
        from tao_qat.inference.onnx_predictor import OnnxPredictor

        return OnnxPredictor(model_path, key=key)
    if framework == "tensorrt":
        from tao_qat.inference.tensorrt_predictor import TensorRTPredictor

        return TensorRTPredictor(model_path)
    raise UsageError(f"-f/--framework {framework}: not supported (supported: tlt, onnx, tensorrt)")
