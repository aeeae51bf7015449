"""One-line errors for missing optional dependencies (TensorRT, pycuda, a GPU)."""

import json

import pytest

from tao_qat.common.errors import MissingDependencyError
from tao_qat.common.optional import (
    PYCUDA_MISSING,
    TENSORRT_MISSING,
    gpu_missing_reason,
    optional_import,
    require_cuda_context,
    require_tensorrt,
    tensorrt_missing_reason,
)

without_tensorrt = pytest.mark.skipif(
    tensorrt_missing_reason() is None, reason="TensorRT is installed here"
)
without_pycuda = pytest.mark.skipif(
    gpu_missing_reason() != PYCUDA_MISSING, reason="pycuda is installed here"
)


def test_messages():
    assert TENSORRT_MISSING == (
        "TensorRT is not installed (pip install tao-qat[tensorrt] on a machine with an NVIDIA GPU)"
    )
    assert PYCUDA_MISSING.startswith("pycuda is not installed (pip install tao-qat[tensorrt]")


@without_tensorrt
def test_missing_tensorrt_is_one_line():
    with pytest.raises(MissingDependencyError) as info:
        require_tensorrt()
    assert str(info.value) == TENSORRT_MISSING
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert tensorrt_missing_reason() == TENSORRT_MISSING


@without_pycuda
def test_missing_pycuda_is_one_line():
    with pytest.raises(MissingDependencyError, match="^pycuda is not installed"):
        require_cuda_context()
    assert gpu_missing_reason() == PYCUDA_MISSING


def test_optional_import_present_module():
    assert optional_import("json", "unused") is json


def test_broken_install_is_told_apart(tmp_path, monkeypatch):
    # present but failing modules: a missing dependency inside, a missing shared library
    (tmp_path / "qat_fake_trt.py").write_text("import qat_missing_dependency_xyz\n")
    (tmp_path / "qat_fake_lib.py").write_text(
        "raise OSError('libnvinfer.so.10: cannot open shared object file')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependencyError) as info:
        optional_import("qat_fake_trt", TENSORRT_MISSING)
    assert str(info.value) == (
        f"{TENSORRT_MISSING}: import failed (No module named 'qat_missing_dependency_xyz')"
    )
    with pytest.raises(MissingDependencyError, match=r"import failed \(libnvinfer.so.10: cannot"):
        optional_import("qat_fake_lib", TENSORRT_MISSING)
    with pytest.raises(MissingDependencyError) as info:
        optional_import("qat_absent_module_xyz", "X is not installed")
    assert str(info.value) == "X is not installed"


def test_a_folder_named_like_the_module_is_not_the_module(tmp_path, monkeypatch):
    # tests/<name>/ without __init__.py imports as a namespace package when tests/ is on
    # sys.path; a folder called "tensorrt" would pass for TensorRT without this check
    (tmp_path / "qat_namespace_xyz").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependencyError) as info:
        optional_import("qat_namespace_xyz", TENSORRT_MISSING)
    assert str(info.value) == TENSORRT_MISSING
