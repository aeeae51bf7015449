"""ONNX Runtime (CPU) predictor for exported NCHW DetectNet_v2 models, float or Q/DQ INT8.

Same interface as ``inference.predictor.KerasPredictor``: images float32 [B, H, W, C] (RGB in
[0, 1], NHWC) -> (cov float32 [B, Gh, Gw, C_cls], bbox float32 [B, Gh, Gw, 4*C_cls]). The
images are transposed to the graph's NCHW input and the outputs back to NHWC. TF-free.
"""

import os
from pathlib import Path

import numpy as np

from tao_qat.common.errors import DataError, UsageError
from tao_qat.inference.predictor import output_indices


def cpu_count():
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class OnnxPredictor:
    """An ONNX model (``export_onnx`` layout: input [N, C, H, W]) on ONNX Runtime's CPU provider.

    Args:
        path: .onnx file.
        num_threads: intra-op threads (default: the CPU cores available).

    Attributes:
        input_shape: (H, W, C) read from the model input.
        batch_size: the model's fixed batch size, or None when the batch is dynamic.
    """

    def __init__(self, path, *, key=None, num_threads=None):
        import onnxruntime as ort

        from tao_qat.common.crypto import is_encrypted, load_bytes

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: ONNX model not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or cpu_count()
        options.inter_op_num_threads = 1
        # Encrypted exports (-k) are decrypted in memory; plain files load by path.
        source = load_bytes(path, key) if key or is_encrypted(path) else str(path)
        try:
            self.session = ort.InferenceSession(
                source, options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own pybind classes
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err)
            raise DataError(f"{path}: not a loadable ONNX model ({first_line})") from err
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise DataError(f"{path}: expected one NCHW image input, got {len(inputs)} inputs")
        self._input = inputs[0].name
        batch, channels, height, width = inputs[0].shape
        if not all(isinstance(dim, int) for dim in (channels, height, width)):
            raise DataError(f"{path}: input {self._input} has a symbolic C, H or W")
        self.input_shape = (height, width, channels)
        self.batch_size = batch if isinstance(batch, int) and batch > 0 else None
        names = [out.name for out in self.session.get_outputs()]
        cov, bbox = output_indices(names)
        self._outputs = [names[cov], names[bbox]]

    def _run(self, nchw):
        cov, bbox = self.session.run(self._outputs, {self._input: nchw})
        return cov, bbox

    def __call__(self, images):
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[1:] != self.input_shape or not len(images):
            height, width, channels = self.input_shape
            raise UsageError(
                f"images shape {images.shape}: the model takes [B >= 1, {height}, {width}, "
                f"{channels}] (NHWC)"
            )
        nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        if self.batch_size is None:
            cov, bbox = self._run(nchw)
        else:
            cov, bbox = self._run_fixed_batches(nchw)
        return (
            np.ascontiguousarray(cov.transpose(0, 2, 3, 1)),
            np.ascontiguousarray(bbox.transpose(0, 2, 3, 1)),
        )

    def _run_fixed_batches(self, nchw):
        """Run a static-batch model on any number of images (the last chunk zero-padded)."""
        count, step = len(nchw), self.batch_size
        covs, bboxes = [], []
        for start in range(0, count, step):
            chunk = nchw[start : start + step]
            if len(chunk) < step:
                pad = np.zeros((step - len(chunk),) + chunk.shape[1:], np.float32)
                chunk = np.concatenate([chunk, pad])
            cov, bbox = self._run(chunk)
            covs.append(cov)
            bboxes.append(bbox)
        return np.concatenate(covs)[:count], np.concatenate(bboxes)[:count]
