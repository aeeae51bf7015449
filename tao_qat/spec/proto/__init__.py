"""Generated protobuf modules (``*_pb2.py``) of the TAO-compatible spec schema."""
