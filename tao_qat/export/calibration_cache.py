"""TensorRT calibration cache and TAO ``--cal_json_file`` I/O from a ``{tensor: amax}`` dict
(int8_calibration.md §2, tao_detectnet_v2.md §6).

Cache layout (plain ASCII, ``\\n`` line ends):

    TRT-<version number>-EntropyCalibration2
    <tensor name>: <hex of the float32 bit pattern of amax / 127, big-endian, lowercase,
                    no 0x, no zero padding>

The version number is TensorRT's ``getInferLibVersion()``: major*1000 + minor*100 + patch up to
TensorRT 9, major*10000 + minor*100 + patch from TensorRT 10 on. TensorRT ignores a cache whose
number differs from its own, so the header must name the TensorRT that will build the engine.
"""

import json
import logging
import math
import re
import struct
from importlib import metadata
from pathlib import Path

from tao_qat.common.errors import DataError, UsageError
from tao_qat.common.fileio import atomic_write_text, check_writable_output

logger = logging.getLogger(__name__)

DEFAULT_ALGORITHM = "EntropyCalibration2"
# Used when no TensorRT distribution is installed (docs/calibration.md argues the choice).
DEFAULT_TRT_VERSION = "8.6.1"
TRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:\.\d+)*$")


def installed_trt_version():
    """Version string of the installed TensorRT wheel (importlib.metadata), or None."""
    for name in TRT_DISTRIBUTIONS:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def default_trt_version():
    """The installed TensorRT version, else DEFAULT_TRT_VERSION."""
    return installed_trt_version() or DEFAULT_TRT_VERSION


def trt_version_number(version):
    """TensorRT's getInferLibVersion() for a version string ("8.6.1" -> 8601,
    "10.3.0" -> 100300, "11.4.0.106" -> 110400; a 4th build field is ignored)."""
    match = _VERSION.match(str(version).strip())
    if not match:
        raise UsageError(f"TensorRT version {version!r}: expected MAJOR.MINOR[.PATCH]")
    major, minor, patch = int(match[1]), int(match[2]), int(match[3] or 0)
    if major >= 10:
        if minor > 99 or patch > 99:
            raise UsageError(f"TensorRT version {version!r}: minor and patch must be < 100")
        return (major * 100 + minor) * 100 + patch
    if minor > 9 or patch > 99:
        raise UsageError(f"TensorRT version {version!r}: minor must be < 10, patch < 100")
    return major * 1000 + minor * 100 + patch


def trt_version_header(version, algorithm=DEFAULT_ALGORITHM):
    """First cache line, e.g. trt_version_header("8.6.1") == "TRT-8601-EntropyCalibration2"."""
    return f"TRT-{trt_version_number(version)}-{algorithm}"


def amax_to_hex(amax):
    """Cache value of one tensor: hex of float32(amax / 127) bits ("3d418306" for 6.0, "0"
    for 0.0). amax is divided in float64 and rounded once to float32."""
    amax = float(amax)
    if not (math.isfinite(amax) and amax >= 0.0):
        raise ValueError(f"amax must be finite and >= 0, got {amax}")
    (bits,) = struct.unpack(">I", struct.pack(">f", amax / 127.0))
    return format(bits, "x")


def hex_to_amax(text):
    """Inverse of amax_to_hex: 127 * the float32 whose bits are ``text`` (short hex is
    left-padded to 8 digits, as TensorRT writes a zero scale as "0")."""
    text = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{1,8}", text):
        raise ValueError(f"not a float32 hex value: {text!r}")
    (scale,) = struct.unpack(">f", bytes.fromhex(text.rjust(8, "0")))
    return float(scale) * 127.0


def format_calibration_cache(amax_by_tensor, trt_version=None, algorithm=DEFAULT_ALGORITHM):
    """The cache text for ``{tensor name: amax}`` (lines in dict order, final newline)."""
    version = trt_version or default_trt_version()
    if int(str(version).split(".")[0]) >= 11:
        logger.warning(
            "TensorRT %s has no implicit quantization and ignores calibration "
            "caches; use the Q/DQ ONNX model instead",
            version,
        )
    lines = [trt_version_header(version, algorithm)]
    for name, amax in amax_by_tensor.items():
        if not name or "\n" in name or "\r" in name:
            raise ValueError(f"invalid tensor name for a calibration cache: {name!r}")
        try:
            lines.append(f"{name}: {amax_to_hex(amax)}")
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return "\n".join(lines) + "\n"


def write_calibration_cache(
    path, amax_by_tensor, trt_version=None, force=False, algorithm=DEFAULT_ALGORITHM
):
    """Write a TensorRT calibration cache atomically (OutputExistsError unless ``force``).

    Args:
        amax_by_tensor: {TensorRT / ONNX tensor name: amax >= 0}.
        trt_version: TensorRT that will read the cache ("8.6.1", "10.3.0"); None = the
            installed TensorRT, else DEFAULT_TRT_VERSION.
    Returns the path written.
    """
    path = check_writable_output(path, force)
    atomic_write_text(path, format_calibration_cache(amax_by_tensor, trt_version, algorithm))
    logger.info("wrote %s (%d tensors)", path, len(amax_by_tensor))
    return path


def parse_cache_header(line):
    """Parse a cache header: "TRT-8601-EntropyCalibration2" -> (8601, "EntropyCalibration2").

    Raises ValueError for anything else.
    """
    match = _HEADER.match(line.strip())
    if not match:
        raise ValueError(f"not a TensorRT calibration cache header: {line.strip()!r}")
    return int(match[1]), match[2]


def read_calibration_cache(path):
    """(version number, {tensor: amax}) of a TensorRT cache; DataError names file:line.

    Lines split on the LAST ": " (tensor names may contain ':'); blank lines are skipped.
    """
    try:
        lines = Path(path).read_text(encoding="ascii").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text calibration cache (non-ASCII bytes)") from None
    if not lines:
        raise DataError(f"{path}: empty calibration cache")
    try:
        version, _ = parse_cache_header(lines[0])
    except ValueError as exc:
        raise DataError(f"{path}:1: {exc}") from None
    amax_by_tensor = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(": ")
        try:
            if not sep or not name:
                raise ValueError(f"expected '<tensor>: <hex>', got {line!r}")
            amax_by_tensor[name] = hex_to_amax(value)
        except ValueError as exc:
            raise DataError(f"{path}:{number}: {exc}") from None
    return version, amax_by_tensor


def rewrite_cache_version(path, new_version):
    """Rewrite the header of an existing cache for another TensorRT version, in place
    (atomically); tensor lines are kept byte for byte. Returns the new header."""
    text = Path(path).read_text(encoding="ascii")
    first, newline, rest = text.partition("\n")
    try:
        _, algorithm = parse_cache_header(first)
    except ValueError as exc:
        raise DataError(f"{path}:1: {exc}") from None
    header = trt_version_header(new_version, algorithm)
    atomic_write_text(path, header + newline + rest)
    return header


def write_cal_json(path, amax_by_tensor, force=False):
    """TAO's ``--cal_json_file``: {"tensor_scales": {tensor: amax}} (raw amax, indent 4)."""
    path = check_writable_output(path, force)
    scales = {}
    for name, amax in amax_by_tensor.items():
        amax = float(amax)
        if not (math.isfinite(amax) and amax >= 0.0):
            raise ValueError(f"{name}: amax must be finite and >= 0, got {amax}")
        scales[name] = amax
    atomic_write_text(path, json.dumps({"tensor_scales": scales}, indent=4) + "\n")
    return path


def read_cal_json(path):
    """{tensor: amax} from a ``--cal_json_file``; DataError if the structure is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    scales = data.get("tensor_scales") if isinstance(data, dict) else None
    if not isinstance(scales, dict):
        raise DataError(f"{path}: expected an object with a 'tensor_scales' object")
    out = {}
    for name, amax in scales.items():
        if isinstance(amax, bool) or not isinstance(amax, int | float) or amax < 0:
            raise DataError(f"{path}: tensor_scales[{name!r}]: expected a number >= 0")
        out[name] = float(amax)
    return out
