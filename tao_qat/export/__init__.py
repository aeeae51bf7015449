"""Export (TAO §8): ONNX conversion and tensor names, Q/DQ insertion, calibration, caches."""
