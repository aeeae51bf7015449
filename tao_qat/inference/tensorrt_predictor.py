"""TensorRT engine predictor (``-f tensorrt``, tao_detectnet_v2.md §9): runs a serialized
engine with pycuda buffers behind the ``OnnxPredictor`` interface.

images float32 [B, H, W, C] (RGB in [0, 1], NHWC) -> (cov float32 [B, Gh, Gw, C_cls],
bbox float32 [B, Gh, Gw, 4*C_cls]); the engine itself is NCHW. A dynamic-batch engine runs
chunks of up to its profile's max batch (``set_input_shape``); a fixed-batch engine (static
batch, or min = max, as DLA builds) runs zero-padded chunks. TensorRT >= 8.5 uses the
name-based tensor API with ``execute_async_v3`` (8.6, 10.x, 11.x); older runtimes use bindings.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tao_qat.common.errors import DataError, UsageError
from tao_qat.common.optional import require_cuda_context, require_tensorrt
from tao_qat.inference.predictor import output_indices


def batch_chunks(count, max_batch, fixed):
    """Chunks (start, stop, run_batch) covering ``count`` images: run_batch is the batch the
    engine runs (``max_batch`` for a fixed-batch engine, the chunk length otherwise)."""
    if count < 1 or max_batch < 1:
        raise ValueError(f"need count >= 1 and max_batch >= 1, got {count}, {max_batch}")
    return [
        (
            start,
            min(start + max_batch, count),
            max_batch if fixed else min(max_batch, count - start),
        )
        for start in range(0, count, max_batch)
    ]


def nhwc_to_nchw(images, input_shape):
    """Validated float32 NCHW copy of images [B, H, W, C] for an engine taking (H, W, C)."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:] != tuple(input_shape) or not len(images):
        height, width, channels = input_shape
        raise UsageError(
            f"images shape {images.shape}: the engine takes [B >= 1, {height}, {width}, "
            f"{channels}] (NHWC)"
        )
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


@dataclass(frozen=True)
class IoTensor:
    """An engine input or output: name, engine shape (-1 = dynamic), numpy dtype, binding."""

    name: str
    is_input: bool
    shape: tuple
    dtype: object
    index: int


def _io_tensors(trt, engine, named_api):
    if named_api:
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        return [
            IoTensor(
                name,
                engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                tuple(engine.get_tensor_shape(name)),
                np.dtype(trt.nptype(engine.get_tensor_dtype(name))),
                index,
            )
            for index, name in enumerate(names)
        ]
    return [
        IoTensor(
            engine.get_binding_name(i),
            engine.binding_is_input(i),
            tuple(engine.get_binding_shape(i)),
            np.dtype(trt.nptype(engine.get_binding_dtype(i))),
            i,
        )
        for i in range(engine.num_bindings)
    ]


class TensorRTPredictor:
    """A serialized TensorRT engine (``qat convert`` / export ``--engine_file``) on GPU 0.

    Args:
        engine_path: .engine / .trt file built by the same TensorRT version on the same GPU model.

    Attributes:
        input_shape: (H, W, C) of the engine input.
        batch_size: the fixed batch of a fixed-batch engine, else None.
        max_batch: the largest batch one run takes.
    """

    def __init__(self, engine_path):
        path = Path(engine_path)
        if not path.is_file():
            raise DataError(f"{path}: TensorRT engine not found")
        trt = require_tensorrt()
        self._cuda = cuda = require_cuda_context()
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise DataError(
                f"{path}: not an engine TensorRT {trt.__version__} can load here (engines run "
                "only on the TensorRT version and GPU model that built them)"
            )
        self._named = hasattr(self.engine, "num_io_tensors")
        self._tensors = _io_tensors(trt, self.engine, self._named)
        inputs = [t for t in self._tensors if t.is_input]
        self._outputs = [t for t in self._tensors if not t.is_input]
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise DataError(f"{path}: expected one NCHW image input, got {len(inputs)} inputs")
        self._input = inputs[0]
        cov, bbox = output_indices([t.name for t in self._outputs])
        self._cov, self._bbox = self._outputs[cov], self._outputs[bbox]
        _, channels, height, width = self._input.shape
        self.input_shape = (height, width, channels)
        min_batch, self.max_batch = self._batch_range()
        self.batch_size = self.max_batch if min_batch == self.max_batch else None
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        self._host, self._device = {}, {}
        for tensor in self._tensors:
            shape = (self.max_batch, *tensor.shape[1:])
            if any(dim < 0 for dim in shape):
                raise DataError(f"{path}: tensor {tensor.name} has a dynamic non-batch dim")
            self._host[tensor.name] = cuda.pagelocked_empty(int(np.prod(shape)), tensor.dtype)
            self._device[tensor.name] = cuda.mem_alloc(self._host[tensor.name].nbytes)

    def _batch_range(self):
        """(min, max) batch of the input: its static batch or profile 0's range."""
        name, batch = self._input.name, self._input.shape[0]
        if batch > 0:
            return batch, batch
        if self._named:
            low, _, high = self.engine.get_tensor_profile_shape(name, 0)
        else:
            low, _, high = self.engine.get_profile_shape(0, name)
        return int(low[0]), int(high[0])

    def _run(self, nchw):
        """Run one batch (float32 [b, C, H, W], b <= max_batch); returns {output: array}."""
        cuda, context, stream = self._cuda, self.context, self.stream
        name = self._input.name
        host_in = self._host[name][: nchw.size].reshape(nchw.shape)
        host_in[...] = nchw
        if self._named:
            context.set_input_shape(name, nchw.shape)
        else:
            context.set_binding_shape(self._input.index, nchw.shape)
        cuda.memcpy_htod_async(self._device[name], host_in, stream)
        if self._named:
            for tensor in self._tensors:
                context.set_tensor_address(tensor.name, int(self._device[tensor.name]))
            ok = context.execute_async_v3(stream.handle)
        else:
            bindings = [int(self._device[t.name]) for t in self._tensors]
            ok = context.execute_async_v2(bindings, stream.handle)
        if not ok:
            raise DataError("TensorRT execution failed (rerun with --verbose for its log)")
        results = {}
        for tensor in (self._cov, self._bbox):
            if self._named:
                shape = tuple(context.get_tensor_shape(tensor.name))
            else:
                shape = tuple(context.get_binding_shape(tensor.index))
            host = self._host[tensor.name][: int(np.prod(shape))].reshape(shape)
            cuda.memcpy_dtoh_async(host, self._device[tensor.name], stream)
            results[tensor.name] = host
        stream.synchronize()
        return {key: value.astype(np.float32) for key, value in results.items()}

    def __call__(self, images):
        nchw = nhwc_to_nchw(images, self.input_shape).astype(self._input.dtype, copy=False)
        covs, bboxes = [], []
        for start, stop, run in batch_chunks(
            len(nchw), self.max_batch, self.batch_size is not None
        ):
            chunk = nchw[start:stop]
            if run > len(chunk):
                pad = np.zeros((run - len(chunk), *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            outputs = self._run(chunk)
            covs.append(outputs[self._cov.name][: stop - start])
            bboxes.append(outputs[self._bbox.name][: stop - start])
        return (
            np.ascontiguousarray(np.concatenate(covs).transpose(0, 2, 3, 1)),
            np.ascontiguousarray(np.concatenate(bboxes).transpose(0, 2, 3, 1)),
        )
