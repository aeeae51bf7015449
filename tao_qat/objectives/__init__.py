"""Training targets and costs: bbox rasterizer, bbox encoding, cost functions, auto-weighting."""
