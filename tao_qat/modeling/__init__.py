"""DetectNet_v2 models: ResNet templates, heads, build_model, weight loading."""
