"""The ``--engine_file`` step of ``qat export`` (tao_detectnet_v2.md §8; int8_calibration.md
§3): hands the exported ONNX to ``export.tensorrt_engine.build_engine``. Whether TensorRT can
be imported is checked before any work, so a machine without it gets one line at once."""

import logging

from tao_qat.common.errors import MissingDependencyError

logger = logging.getLogger(__name__)


def check_engine_builder():
    """Raise MissingDependencyError (one line naming what is missing) unless TensorRT imports."""
    from tao_qat.common.optional import tensorrt_missing_reason

    reason = tensorrt_missing_reason()
    if reason is not None:
        raise MissingDependencyError(
            f"--engine_file: {reason}; export without it and build the engine on the target "
            "(qat convert)"
        )


def build_engine_file(staged, paths, options):
    """Build ``paths.engine`` (staged) from the staged ONNX.

    INT8 builds from the Q/DQ ONNX (explicit quantization: TensorRT 8.6-10 with the INT8 flag,
    11 strongly typed; the heads stay float), FP16 / FP32 from the float ONNX. Profile: min /
    opt / max batch = ``--min_batch_size`` / ``--opt_batch_size`` / max(``--batch_size``,
    ``--max_batch_size``) as TAO.
    """
    from tao_qat.export.tensorrt_engine import build_engine

    int8 = options.data_type == "int8"
    source = paths.qdq_onnx if int8 else paths.onnx
    return build_engine(
        staged.stage(source),
        staged.stage(paths.engine),
        data_type=options.data_type,
        qdq=int8,
        min_batch=options.min_batch_size,
        opt_batch=options.opt_batch_size,
        max_batch=max(options.batch_size, options.max_batch_size),
        workspace_bytes=options.max_workspace_size,
        strict_types=options.strict_type_constraints,
        key=options.key,
    )
