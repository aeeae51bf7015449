"""Spec files: the TAO-compatible .proto schema, text-format loader and validation."""
