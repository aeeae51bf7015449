"""Feeding INT8 scales to the TensorRT builder (TensorRT <= 10, implicit quantization):
a calibrator subclass serving a calibration cache or NCHW batches through pycuda, cache header
retargeting and cache coverage of the parsed network (int8_calibration.md §2, §3.3, §5).

Everything except ``make_calibrator`` (which subclasses ``trt.IInt8EntropyCalibrator2``),
``network_tensor_names`` and ``pin_layer_precision`` runs without TensorRT.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tao_qat.common.errors import DataError, UsageError
from tao_qat.common.fileio import atomic_write_bytes
from tao_qat.common.optional import PYCUDA_MISSING, optional_import
from tao_qat.export.calibration_cache import (
    DEFAULT_ALGORITHM,
    parse_cache_header,
    read_calibration_cache,
    rewrite_cache_version,
    trt_version_header,
    trt_version_number,
)

logger = logging.getLogger(__name__)

# cache header algorithm -> the TensorRT calibrator class that accepts that cache
CALIBRATOR_BASES = {
    "EntropyCalibration2": "IInt8EntropyCalibrator2",
    "EntropyCalibration": "IInt8EntropyCalibrator",
    "MinMaxCalibration": "IInt8MinMaxCalibrator",
}


@dataclass(frozen=True)
class LoadedCache:
    """A calibration cache read for a build: header fields, {tensor: amax} and the raw text."""

    path: Path
    version_number: int
    algorithm: str
    amax: dict
    text: str


def load_cache_for_build(path):
    """Read and validate a TensorRT calibration cache (DataError names file:line)."""
    path = Path(path)
    version_number, amax = read_calibration_cache(path)
    text = path.read_text(encoding="ascii")
    _, algorithm = parse_cache_header(text.partition("\n")[0])
    if algorithm not in CALIBRATOR_BASES:
        raise DataError(
            f"{path}:1: calibrator {algorithm!r} is not one of {', '.join(CALIBRATOR_BASES)}"
        )
    return LoadedCache(path, version_number, algorithm, amax, text)


def cache_bytes_for_version(cache, trt_version):
    """The cache bytes to hand TensorRT ``trt_version``: the header is rewritten in memory when
    it names another version (TensorRT would silently ignore the cache and recalibrate)."""
    number = trt_version_number(trt_version)
    if cache.version_number == number:
        return cache.text.encode("ascii")
    header = trt_version_header(trt_version, cache.algorithm)
    logger.warning(
        "%s: header TRT-%d-%s was written for another TensorRT; using it with TensorRT %s as %s "
        "(the file is unchanged; `qat convert --trt_version %s %s` rewrites it)",
        cache.path,
        cache.version_number,
        cache.algorithm,
        trt_version,
        header,
        trt_version,
        cache.path,
    )
    _, newline, rest = cache.text.partition("\n")
    return (header + newline + rest).encode("ascii")


def retarget_cache(path, trt_version):
    """Rewrite a cache header in place for the TensorRT that will read it (TAO asks Jetson
    users to edit it by hand). Tensor lines are kept byte for byte; every line is validated
    first. Returns (old header, new header); the file is untouched when they are equal."""
    path = Path(path)
    if str(path).lower().endswith(".onnx"):
        raise UsageError(f"{path}: --trt_version alone rewrites a calibration cache, not a model")
    if not path.is_file():
        raise DataError(f"{path}: calibration cache not found")
    if trt_version_number(trt_version) >= 110000:
        raise UsageError(
            f"--trt_version {trt_version}: TensorRT 11 removed implicit quantization and ignores "
            "calibration caches; build the Q/DQ ONNX instead"
        )
    read_calibration_cache(path)
    old = path.read_text(encoding="ascii").partition("\n")[0].strip()
    new = trt_version_header(trt_version, parse_cache_header(old)[1])
    if new != old:
        rewrite_cache_version(path, trt_version)
    return old, new


@dataclass(frozen=True)
class CacheCoverage:
    """Which network tensors have a cache scale. covered/missing: network tensor names (network
    order); extra: cache keys naming no network tensor (stale or synthetic names)."""

    covered: tuple
    missing: tuple
    extra: tuple


def cache_coverage(cache_keys, tensor_names):
    """CacheCoverage of ``tensor_names`` (network order) by ``cache_keys``."""
    keys, names = set(cache_keys), list(dict.fromkeys(tensor_names))
    return CacheCoverage(
        covered=tuple(n for n in names if n in keys),
        missing=tuple(n for n in names if n not in keys),
        extra=tuple(k for k in cache_keys if k not in set(names)),
    )


def report_coverage(cache, tensor_names, dla=False):
    """Log the coverage of the parsed network by ``cache`` (a warning on DLA, which needs a
    scale for every tensor it runs); returns the CacheCoverage."""
    coverage = cache_coverage(list(cache.amax), tensor_names)
    total = len(coverage.covered) + len(coverage.missing)
    logger.info(
        "%s: %d of %d network tensors have a scale (%d cache entries name no tensor)",
        cache.path,
        len(coverage.covered),
        total,
        len(coverage.extra),
    )
    if coverage.missing:
        shown = ", ".join(coverage.missing[:5]) + (" ..." if len(coverage.missing) > 5 else "")
        level = logging.WARNING if dla else logging.INFO
        logger.log(
            level,
            "%d tensors without a scale run in FP16/FP32%s: %s",
            len(coverage.missing),
            " on the GPU (DLA needs them all; use a PTQ cache)" if dla else "",
            shown,
        )
    return coverage


class CalibrationFeed:
    """What a TensorRT calibrator serves: fixed-size NCHW float32 batches and a cache.

    Args:
        batches: iterable of float32 [B, C, H, W] (None: cache only). B is taken from the first
            batch; a batch of another size (a short last batch) is dropped with a warning.
        chw: the model's (C, H, W).
        cache_bytes: the cache TensorRT reads (skips calibration), or None.
        cache_path: where TensorRT's own cache is written after calibrating, or None.
        default_batch: batch size reported when there are no batches.
    Attributes: batch_size, batches_served, error (an exception raised while serving, kept
    because TensorRT swallows exceptions from calibrator callbacks).
    """

    def __init__(self, batches, chw, *, cache_bytes=None, cache_path=None, default_batch=1):
        self.chw = tuple(int(v) for v in chw)
        self.cache_bytes = cache_bytes
        self.cache_path = Path(cache_path) if cache_path else None
        self.batches_served = 0
        self.error = None
        self._batches = iter(batches if batches is not None else ())
        self._pending = None
        self.batch_size = default_batch
        if batches is not None:
            first = next(self._batches, None)
            if first is None:
                raise DataError("calibration data: no batches")
            self._pending = self._checked(first)
            self.batch_size = int(self._pending.shape[0])

    def _checked(self, batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != self.chw or not len(batch):
            c, h, w = self.chw
            raise DataError(
                f"calibration batch shape {batch.shape}: the model takes [B, {c}, {h}, {w}] (NCHW)"
            )
        return batch

    def next_batch(self):
        """The next float32 [B, C, H, W] batch, or None when the data is exhausted."""
        while True:
            if self._pending is not None:
                batch, self._pending = self._pending, None
            else:
                batch = next(self._batches, None)
                if batch is None:
                    return None
                batch = self._checked(batch)
            if batch.shape[0] == self.batch_size:
                self.batches_served += 1
                return batch
            logger.warning(
                "calibration: dropping a batch of %d images (batch size %d)",
                batch.shape[0],
                self.batch_size,
            )

    def read_cache(self):
        """Cache bytes for TensorRT (None: calibrate)."""
        return self.cache_bytes

    def write_cache(self, data):
        """Store the cache TensorRT produced after calibrating (atomically), if a path is set."""
        if self.cache_path is not None:
            atomic_write_bytes(self.cache_path, bytes(data))
            logger.info("wrote calibration cache %s", self.cache_path)


def make_calibrator(trt, feed, algorithm=None):
    """A TensorRT calibrator (IInt8EntropyCalibrator2 unless the cache names another) serving
    ``feed``; batches are copied to one pycuda device buffer kept alive by the calibrator."""
    base = getattr(trt, CALIBRATOR_BASES[algorithm or DEFAULT_ALGORITHM])

    class FeedCalibrator(base):
        def __init__(self):
            base.__init__(self)  # required, else TensorRT reports pure virtual calls
            self.feed = feed
            self._cuda = None
            self._device = None

        def get_batch_size(self):
            return self.feed.batch_size

        def get_batch(self, names):
            try:
                batch = self.feed.next_batch()
                if batch is None:
                    return None
                if self._cuda is None:
                    self._cuda = optional_import("pycuda.driver", PYCUDA_MISSING)
                if self._device is None:
                    self._device = self._cuda.mem_alloc(batch.nbytes)
                self._cuda.memcpy_htod(self._device, batch)
                return [int(self._device)]  # one image input (read_onnx_info)
            except Exception as exc:  # TensorRT would swallow it: keep it for build_engine
                self.feed.error = exc
                return None

        def read_calibration_cache(self):
            return self.feed.read_cache()

        def write_calibration_cache(self, cache):
            try:
                self.feed.write_cache(cache)
            except Exception as exc:  # noqa: BLE001 - reported after the build
                self.feed.error = exc

    return FeedCalibrator()


def network_tensor_names(trt, network):
    """Names of the network inputs and floating-point layer outputs, in network order."""
    floats = (trt.float32, trt.float16)
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            tensor = layer.get_output(j)
            if tensor.dtype in floats:
                names.append(tensor.name)
    return names


def pin_layer_precision(trt, network, precision, scaled=None):
    """Strict mode: set ``layer.precision`` ("int8" / "fp16") on the floating-point layers
    (for int8 only those whose outputs all appear in ``scaled``); returns how many."""
    dtype = {"int8": trt.int8, "fp16": trt.float16}[precision]
    floats = (trt.float32, trt.float16)
    count = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if not outputs or any(t.dtype not in floats for t in outputs):
            continue
        if scaled is not None and any(t.name not in scaled for t in outputs):
            continue
        layer.precision = dtype
        count += 1
    return count
