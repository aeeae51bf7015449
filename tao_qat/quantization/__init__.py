"""Quantization for TensorRT INT8: placement policy, QAT rewrite, peel-out (TAO §6).

TF-free: ``numeric`` (INT8 arithmetic), ``graph`` (config graph view), ``policy`` (placement
rules), ``naming``. With TensorFlow: ``fake_quant``, ``layers`` (quantizers, wrapper,
``QAT_CUSTOM_OBJECTS``), ``qat`` (``create_qat_model``, ``is_qat_model``), ``peel``
(``extract_quantization``), ``calibrate`` (``calibrate_ranges``). The names below are loaded on
first use, so importing this package does not import TensorFlow.
"""

import importlib

_LAZY = {
    "QuantizationPolicy": "tao_qat.quantization.policy",
    "DEFAULT_RULES": "tao_qat.quantization.policy",
    "plan_quantization": "tao_qat.quantization.policy",
    "create_qat_model": "tao_qat.quantization.qat",
    "is_qat_model": "tao_qat.quantization.qat",
    "extract_quantization": "tao_qat.quantization.peel",
    "calibrate_ranges": "tao_qat.quantization.calibrate",
    "QAT_CUSTOM_OBJECTS": "tao_qat.quantization.layers",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
