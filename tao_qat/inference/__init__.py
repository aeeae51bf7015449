"""Running models: predictors (Keras, later ONNX Runtime / TensorRT) and the evaluate/inference
workflows that feed their numpy outputs to postprocessing and evaluation."""
