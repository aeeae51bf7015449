"""Load TAO protobuf text-format spec files into messages and validate them (TAO digest §1.11).

Three kinds of spec exist: ``experiment`` (train/evaluate/prune/export, message ``Experiment``),
``dataset_export`` (dataset_convert, ``DatasetExportConfig``) and ``inference``
(``Inference``). Parsing is strict like TAO (``merge_from_default=False``): unknown fields,
repeated singular fields and bad values are errors reported as ``file:line:column: message``.
TF-free: stdlib + protobuf only.
"""

import difflib
import re
from pathlib import Path

from google.protobuf import descriptor_pool, text_format

from tao_qat.common.errors import SpecError
from tao_qat.spec import validation
from tao_qat.spec.proto import dataset_export_config_pb2, experiment_pb2, inference_pb2

PACKAGE_PREFIX = "tao_qat.spec."

# kind -> top-level message class.
SPEC_KINDS = {
    "experiment": experiment_pb2.Experiment,
    "dataset_export": dataset_export_config_pb2.DatasetExportConfig,
    "inference": inference_pb2.Inference,
}

_POSITION = re.compile(r"^(\d+):(\d+) : ")
_UNKNOWN_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "(\w+)"')


def read_spec_text(path):
    """Return the text of spec file ``path``; SpecError if missing, a directory or not UTF-8."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: spec file not found")
    if not path.is_file():
        raise SpecError(f"{path}: not a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not a UTF-8 text file (byte {exc.start})") from None


def _clean_parse_message(message):
    """Strip text_format's position prefix, echoed source line and package name."""
    message = _POSITION.sub("", str(message), count=1)
    if message.startswith("'"):
        # text_format sometimes echoes the offending line: "'<line>': <reason>".
        end = message.find("': ")
        if end > 0:
            message = message[end + 3 :]
    hint = ""
    unknown = _UNKNOWN_FIELD.search(message)
    if unknown:
        hint = _did_you_mean(unknown.group(1), unknown.group(2))
    message = message.replace(PACKAGE_PREFIX, "").rstrip(".")
    return " ".join(message.split()) + hint


def _did_you_mean(full_type_name, field_name):
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(full_type_name)
    except KeyError:
        return ""
    close = difflib.get_close_matches(field_name, [f.name for f in descriptor.fields], n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _parse_error(exc, source_name):
    line, column = exc.GetLine(), exc.GetColumn()
    where = f"{source_name}:{line}:{column}" if line is not None else f"{source_name}"
    return SpecError(f"{where}: {_clean_parse_message(exc)}")


def parse_spec_text(text, message_type, source_name="<spec>"):
    """Parse text-format ``text`` into a new ``message_type`` message (no validation).

    Raises SpecError ``"<source_name>:<line>:<column>: <reason>"`` on syntax errors.
    """
    message = message_type()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise _parse_error(exc, source_name) from None
    return message


def _kind_of(kind):
    if kind not in SPEC_KINDS:
        raise SpecError(f"unknown spec kind {kind!r} (expected one of {', '.join(SPEC_KINDS)})")
    return SPEC_KINDS[kind]


def _load(path, kind, do_validate):
    text = read_spec_text(path)
    message = parse_spec_text(text, _kind_of(kind), str(path))
    if do_validate:
        validation.validate(message, kind, str(path))
    return message


def load_experiment_spec(path, validate=True):
    """Load and validate an ``Experiment`` spec (train/evaluate/prune/export)."""
    return _load(path, "experiment", validate)


def load_dataset_export_spec(path, validate=True):
    """Load and validate a ``DatasetExportConfig`` spec (dataset_convert)."""
    return _load(path, "dataset_export", validate)


def load_inference_spec(path, validate=True):
    """Load and validate an ``Inference`` spec."""
    return _load(path, "inference", validate)


def top_level_field_names(text):
    """Names of the fields set at nesting depth 0 of text-format ``text`` (best effort).

    Used to guess a spec's kind when it does not parse; tokenizer errors end the scan early.
    """
    names = []
    tokenizer = text_format.Tokenizer(text.splitlines())
    depth = 0
    previous = None
    try:
        while not tokenizer.AtEnd():
            token = tokenizer.token
            if token in ("{", "<"):
                if depth == 0 and previous is not None:
                    names.append(previous)
                depth += 1
            elif token in ("}", ">"):
                depth = max(depth - 1, 0)
            elif token == ":" and depth == 0 and previous is not None:
                names.append(previous)
            previous = token if re.fullmatch(r"[A-Za-z_]\w*", token) else None
            tokenizer.NextToken()
    except text_format.ParseError:
        pass
    return names


def detect_spec_kind(text, source_name="<spec>"):
    """Return (kind, message) for spec ``text`` by parsing it as each kind.

    A non-empty spec parses as exactly one kind (their top-level field names are disjoint).
    When none parses, the error reported is the one of the kind whose top-level field names
    match best (ties: the kind that parsed furthest). Raises SpecError.
    """
    parsed, errors = {}, {}
    for kind, message_type in SPEC_KINDS.items():
        message = message_type()
        try:
            text_format.Parse(text, message)
        except text_format.ParseError as exc:
            errors[kind] = exc
        else:
            parsed[kind] = message
    if len(parsed) == 1:
        return next(iter(parsed.items()))
    if parsed:
        raise SpecError(
            f"{source_name}: spec sets no fields, cannot tell its kind "
            f"(pass --kind {'|'.join(SPEC_KINDS)})"
        )
    names = set(top_level_field_names(text))

    def score(kind):
        fields = {f.name for f in SPEC_KINDS[kind].DESCRIPTOR.fields}
        exc = errors[kind]
        return (len(names & fields), exc.GetLine() or 0, exc.GetColumn() or 0)

    best = max(errors, key=score)
    if score(best)[0] == 0:
        exc = errors[best]
        unknown = _UNKNOWN_FIELD.search(str(exc))
        if unknown:
            raise SpecError(
                f"{source_name}:{exc.GetLine()}:{exc.GetColumn()}: not a TAO spec: "
                f'"{unknown.group(2)}" is not a top-level field of an experiment, '
                "dataset_export or inference spec"
            )
    raise _parse_error(errors[best], source_name)


def load_spec(path, kind=None, validate=True):
    """Load spec ``path`` of ``kind`` (auto-detected when None); return (kind, message)."""
    if kind is not None:
        return kind, _load(path, kind, validate)
    text = read_spec_text(path)
    kind, message = detect_spec_kind(text, str(path))
    if validate:
        validation.validate(message, kind, str(path))
    return kind, message
