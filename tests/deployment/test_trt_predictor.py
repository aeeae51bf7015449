"""TensorRTPredictor helpers without TensorRT: batching, layout, missing files."""

import numpy as np
import pytest
from trt_testing import images

from tao_qat.common.errors import DataError, MissingDependencyError, UsageError
from tao_qat.common.optional import TENSORRT_MISSING, tensorrt_missing_reason
from tao_qat.inference.tensorrt_predictor import TensorRTPredictor, batch_chunks, nhwc_to_nchw


def test_batch_chunks():
    # dynamic engine, max batch 4: runs of 4 and 1
    assert batch_chunks(5, 4, fixed=False) == [(0, 4, 4), (4, 5, 1)]
    # fixed-batch engine: the last chunk runs padded to 4
    assert batch_chunks(5, 4, fixed=True) == [(0, 4, 4), (4, 5, 4)]
    assert batch_chunks(3, 8, fixed=False) == [(0, 3, 3)]
    assert batch_chunks(8, 4, fixed=True) == [(0, 4, 4), (4, 8, 4)]
    with pytest.raises(ValueError):
        batch_chunks(0, 4, fixed=False)


def test_nhwc_to_nchw():
    batch = images(2)
    nchw = nhwc_to_nchw(batch, (32, 48, 3))
    assert nchw.shape == (2, 3, 32, 48) and nchw.flags["C_CONTIGUOUS"]
    assert nchw[1, 2, 5, 7] == batch[1, 5, 7, 2]
    with pytest.raises(UsageError, match=r"the engine takes \[B >= 1, 32, 48, 3\] \(NHWC\)"):
        nhwc_to_nchw(batch.transpose(0, 3, 1, 2), (32, 48, 3))
    with pytest.raises(UsageError):
        nhwc_to_nchw(np.zeros((0, 32, 48, 3), np.float32), (32, 48, 3))


def test_missing_engine(tmp_path):
    with pytest.raises(DataError, match="none.engine: TensorRT engine not found"):
        TensorRTPredictor(tmp_path / "none.engine")


@pytest.mark.skipif(tensorrt_missing_reason() is None, reason="TensorRT is installed here")
def test_engine_without_tensorrt(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x00" * 64)
    with pytest.raises(MissingDependencyError) as info:
        TensorRTPredictor(engine)
    assert str(info.value) == TENSORRT_MISSING
