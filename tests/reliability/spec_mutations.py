"""Hypothesis strategies that damage valid spec files, and checks of the errors they cause.

Each strategy draws a valid base spec and returns a ``Mutant``: the damaged bytes, the kind of
damage (``MUTATION_KINDS``, the rows of docs/reliability.md) and, when the damage is certain
to make the spec unusable, ``must_fail=True`` plus the line (or byte) the error must name.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from tao_qat.spec.loader import SPEC_KINDS

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_SPECS = sorted(
    p
    for p in [
        *(REPO_ROOT / "tests/data/specs").glob("*.txt"),
        *(REPO_ROOT / "examples/trees/specs").glob("*.txt"),
    ]
    if p.name != "SOURCES.txt"
)
_TEXTS = {p: p.read_text(encoding="utf-8") for p in BASE_SPECS}

# "  name: value" on one line (value: quoted string, number or identifier).
SCALAR_LINE = re.compile(r"^(?P<head>\s*(?P<name>\w+)\s*:\s*)(?P<value>\S.*?)\s*$")
QUOTED = re.compile(r'^"(?:[^"\\]|\\.)*"$|^\'(?:[^\'\\]|\\.)*\'$')
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?[fF]?$")


@dataclass
class Mutant:
    """A damaged spec. ``line``: 1-based line the error must name; ``byte``: bad byte offset."""

    kind: str
    base: Path
    data: bytes
    must_fail: bool = False
    line: int | None = None
    byte: int | None = None


def _lines(text):
    return text.splitlines(keepends=True)


def _scalar_lines(lines):
    """Indexes of lines holding one ``name: value`` field (comments excluded)."""
    return [
        i
        for i, line in enumerate(lines)
        if SCALAR_LINE.match(line) and not line.lstrip().startswith("#") and "{" not in line
    ]


def _value_type(value):
    """Return "string", "number" or "identifier" (bool / enum); a [list] by its first item."""
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1].split(",")[0].strip()
    if QUOTED.match(value):
        return "string"
    if NUMBER.match(value):
        return "number"
    return "identifier"  # bool or enum name


base_specs = st.sampled_from(BASE_SPECS)


@st.composite
def delete_lines(draw):
    base = draw(base_specs)
    lines = _lines(_TEXTS[base])
    start = draw(st.integers(0, len(lines) - 1))
    count = draw(st.integers(1, 3))
    return Mutant("delete_lines", base, "".join(lines[:start] + lines[start + count :]).encode())


@st.composite
def delete_closing_brace(draw):
    base = draw(base_specs.filter(lambda p: "}" in _TEXTS[p]))
    lines = _lines(_TEXTS[base])
    index = draw(st.sampled_from([i for i, line in enumerate(lines) if line.strip() == "}"]))
    data = "".join(lines[:index] + lines[index + 1 :]).encode()
    return Mutant("delete_closing_brace", base, data, must_fail=True)


@st.composite
def swap_values(draw):
    base = draw(base_specs)
    lines = _lines(_TEXTS[base])
    first, second = draw(
        st.lists(st.sampled_from(_scalar_lines(lines)), min_size=2, max_size=2, unique=True)
    )
    a, b = SCALAR_LINE.match(lines[first]), SCALAR_LINE.match(lines[second])
    lines[first] = f"{a['head']}{b['value']}\n"
    lines[second] = f"{b['head']}{a['value']}\n"
    return Mutant("swap_values", base, "".join(lines).encode())


# Replacement values that can never parse for a field whose current value has this type
# (no bare integers for identifiers: enums accept them; no [lists]: repeated fields accept them).
_WRONG_TYPE = {
    "string": ["12", "true", "SOME_NAME", "{ }", '"unterminated'],
    "number": ['"12"', "twelve", "{ }", "1..2", '"unterminated'],
    "identifier": ['"text"', "NOT_A_VALUE_NAME", "{ }", "1.5.2", '"unterminated'],
}


@st.composite
def wrong_type(draw):
    base = draw(base_specs)
    lines = _lines(_TEXTS[base])
    index = draw(st.sampled_from(_scalar_lines(lines)))
    match = SCALAR_LINE.match(lines[index])
    new = draw(st.sampled_from(_WRONG_TYPE[_value_type(match["value"])]))
    lines[index] = f"{match['head']}{new}\n"
    return Mutant("wrong_type", base, "".join(lines).encode(), must_fail=True, line=index + 1)


_ODD_NUMBERS = [
    "-1",
    "0",
    "1e40",
    "-1e40",
    "nan",
    "inf",
    "-inf",
    "2.5",
    "4294967296",
    "-2147483649",
    "0x10",
    "1e-45",
    "99999999999999999999",
]


@st.composite
def odd_number(draw):
    base = draw(
        base_specs.filter(
            lambda p: any(
                _value_type(SCALAR_LINE.match(_lines(_TEXTS[p])[i])["value"]) == "number"
                for i in _scalar_lines(_lines(_TEXTS[p]))
            )
        )
    )
    lines = _lines(_TEXTS[base])
    numeric = [
        i
        for i in _scalar_lines(lines)
        if _value_type(SCALAR_LINE.match(lines[i])["value"]) == "number"
    ]
    index = draw(st.sampled_from(numeric))
    match = SCALAR_LINE.match(lines[index])
    lines[index] = f"{match['head']}{draw(st.sampled_from(_ODD_NUMBERS))}\n"
    return Mutant("odd_number", base, "".join(lines).encode())


@st.composite
def unknown_field(draw):
    base = draw(base_specs)
    lines = _lines(_TEXTS[base])
    index = draw(st.integers(0, len(lines)))
    name = draw(st.from_regex(r"zz_[a-z_]{1,12}", fullmatch=True))
    value = draw(st.sampled_from(["1", '"x"', "{ }", "true"]))
    separator = " " if value == "{ }" else ": "
    lines.insert(index, f"  {name}{separator}{value}\n")
    if index > 0 and not lines[index - 1].endswith("\n"):
        lines[index - 1] += "\n"
    return Mutant("unknown_field", base, "".join(lines).encode(), must_fail=True, line=index + 1)


@st.composite
def duplicate_line(draw):
    base = draw(base_specs)
    lines = _lines(_TEXTS[base])
    index = draw(st.sampled_from(_scalar_lines(lines)))
    lines.insert(index, lines[index])
    return Mutant("duplicate_line", base, "".join(lines).encode())


@st.composite
def truncate(draw):
    base = draw(base_specs)
    data = _TEXTS[base].encode()
    return Mutant("truncate", base, data[: draw(st.integers(0, len(data) - 1))])


@st.composite
def insert_random_bytes(draw):
    base = draw(base_specs)
    data = _TEXTS[base].encode()
    offset = draw(st.integers(0, len(data)))
    noise = draw(st.binary(min_size=1, max_size=16))
    return Mutant("insert_random_bytes", base, data[:offset] + noise + data[offset:])


@st.composite
def random_file(draw):
    data = draw(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
    return Mutant("random_file", BASE_SPECS[0], data)


@st.composite
def invalid_utf8(draw):
    base = draw(base_specs)
    text = _TEXTS[base]
    split = draw(st.integers(0, len(text)))  # a character boundary: the bad byte comes first
    head, tail = text[:split].encode(), text[split:].encode()
    bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x28\xa1", b"\x80"]))
    return Mutant("invalid_utf8", base, head + bad + tail, must_fail=True, byte=len(head))


MUTATIONS = {
    "delete_lines": delete_lines(),
    "delete_closing_brace": delete_closing_brace(),
    "swap_values": swap_values(),
    "wrong_type": wrong_type(),
    "odd_number": odd_number(),
    "unknown_field": unknown_field(),
    "duplicate_line": duplicate_line(),
    "truncate": truncate(),
    "insert_random_bytes": insert_random_bytes(),
    "random_file": random_file(),
    "invalid_utf8": invalid_utf8(),
}
MUTATION_KINDS = list(MUTATIONS)
mutants = st.one_of(*MUTATIONS.values())


# -- checks of the output of `qat validate_spec` / `qat train` ---------------------------------

_PATH_PART = re.compile(r'(?P<name>[A-Za-z_]\w*)(?P<index>\[(?:\d+|"(?:[^"\\]|\\.)*")\])?')


def resolve_field_path(kind, path):
    """True if dotted ``path`` (``a.b["k"].c[0]``) names real fields of spec ``kind``."""
    descriptor = SPEC_KINDS[kind].DESCRIPTOR
    parts = re.findall(r'(?:[^."]|"(?:[^"\\]|\\.)*")+', path)
    for position, part in enumerate(parts):
        match = _PATH_PART.fullmatch(part)
        if descriptor is None or match is None or match["name"] not in descriptor.fields_by_name:
            return False
        field = descriptor.fields_by_name[match["name"]]
        descriptor = field.message_type
        if descriptor is not None and descriptor.GetOptions().map_entry:
            descriptor = descriptor.fields_by_name["value"].message_type
        if position < len(parts) - 1 and descriptor is None:
            return False
    return True
