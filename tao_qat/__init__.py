"""tao_qat: TAO DetectNet_v2 workflow with quantization-aware training, without containers."""

__version__ = "0.1.0"
