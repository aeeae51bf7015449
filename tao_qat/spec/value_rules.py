"""Rules every field of every spec kind obeys, checked by walking the parsed message (TF-free).

- An enum field holds one of its named values: proto3 enums are open, so the text format
  accepts any integer (``clustering_algorithm: 7``) that later code cannot map to a name.
- A float or double field holds a finite number: ``inf`` and ``nan`` parse, and pass range rules
  such as ``>= 0``.
"""

import math

from google.protobuf.descriptor import FieldDescriptor

from tao_qat.spec.checker import fmt, index_path, join, key_path

_FLOATS = (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)


def check_field_values(message, c, path=""):
    """Add an error to checker ``c`` for every undefined enum number or non-finite float set
    anywhere in ``message`` (maps and repeated fields included), naming its field path."""
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key in sorted(value):
                _check(value_field, value[key], key_path(path, field.name, key), c)
        elif field.is_repeated:
            for index, item in enumerate(value):
                _check(field, item, index_path(path, field.name, index), c)
        else:
            _check(field, value, join(path, field.name), c)


def _check(field, value, path, c):
    if field.message_type is not None:
        check_field_values(value, c, path)
    elif field.enum_type is not None and value not in field.enum_type.values_by_number:
        names = ", ".join(v.name for v in field.enum_type.values)
        c.error(path, f"must be one of {names} ({value})")
    elif field.type in _FLOATS and not math.isfinite(value):
        c.error(path, f"must be a finite number ({fmt(value)})")
