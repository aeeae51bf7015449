"""Evaluation (numpy): matching, Pascal VOC AP, reports and precision/recall plots."""
