"""Postprocessing (numpy): grid decoding, DBSCAN / NMS / HYBRID clustering, filters."""
