"""docs/reliability.md's case table against the test suite: every row names tests that exist.

Rows are ``| case | command | observed behaviour | test |``; the test cell holds pytest node ids
in backticks (``tests/a/test_x.py::test_f``, ``::Class::test_f``, ``[param_id]``), separated
by ``<br>``. Node ids are resolved with ``ast`` (no collection, no imports).
"""

import ast
import re

from spec_mutations import MUTATION_KINDS

HEADER = ["case", "command", "observed behaviour", "test"]
NODE_ID = re.compile(r"`(tests/[^`:]+\.py(?:::[A-Za-z_]\w*)+(?:\[[^\]`]+\])?)`")
SELF = "test_reliability_table.py"


def table_rows(doc_text):
    """Return the cells of every row of every table whose header is ``HEADER``."""
    rows, in_table = [], False
    for line in doc_text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells == HEADER:
            in_table = True
        elif in_table and not set("".join(cells)) <= set("-: "):
            rows.append(cells)
    return rows


def _definitions(tree):
    """{"test_f": node, "Class::test_f": node} of top-level tests and test methods."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    found[f"{node.name}::{item.name}"] = item
    return found


def node_id_problem(repo_root, node_id):
    """Return why ``node_id`` names no existing test (None when it exists)."""
    file_part, _, rest = node_id.partition("::")
    path = repo_root / file_part
    if not path.is_file():
        return f"{node_id}: no file {file_part}"
    name, _, param = rest.partition("[")
    source = path.read_text(encoding="utf-8")
    node = _definitions(ast.parse(source)).get(name)
    if node is None:
        return f"{node_id}: no test {name} in {file_part}"
    if param:
        param = param.rstrip("]")
        decorators = "".join(ast.get_source_segment(source, d) or "" for d in node.decorator_list)
        if "parametrize" not in decorators or param not in source:
            return f"{node_id}: {name} has no parametrize id {param!r}"
    return None


def _doc_rows(repo_root):
    return table_rows((repo_root / "docs" / "reliability.md").read_text(encoding="utf-8"))


def test_table_parser_reads_rows_and_node_ids():
    doc = (
        "| case | command | observed behaviour | test |\n|---|---|---|---|\n"
        "| a | qat x | exit 1 | `tests/a/test_a.py::test_one`<br>`tests/a/test_a.py::K::t[p1]` |\n"
        "\ntext\n| other | table |\n| x | y |\n"
    )
    rows = table_rows(doc)
    assert [row[0] for row in rows] == ["a"]
    assert NODE_ID.findall(rows[0][3]) == [
        "tests/a/test_a.py::test_one",
        "tests/a/test_a.py::K::t[p1]",
    ]


def test_every_row_names_existing_tests(repo_root):
    rows = _doc_rows(repo_root)
    assert len(rows) >= 30
    problems = []
    for row in rows:
        assert len(row) == len(HEADER), f"row has {len(row)} cells: {row}"
        node_ids = NODE_ID.findall(row[3])
        if not node_ids:
            problems.append(f"row {row[0]!r} names no test")
        problems += [p for p in (node_id_problem(repo_root, n) for n in node_ids) if p]
    assert problems == []
    assert node_id_problem(repo_root, "tests/reliability/test_reliability_table.py::nope")


def test_every_reliability_test_and_mutation_has_a_row(repo_root):
    rows = _doc_rows(repo_root)
    named = {n.split("[")[0] for row in rows for n in NODE_ID.findall(row[3])}
    missing = []
    for path in sorted((repo_root / "tests" / "reliability").glob("test_reliability_*.py")):
        if path.name == SELF:
            continue
        relative = path.relative_to(repo_root).as_posix()
        for name in _definitions(ast.parse(path.read_text(encoding="utf-8"))):
            if name.split("::")[-1].startswith("test_") and f"{relative}::{name}" not in named:
                missing.append(f"{relative}::{name}")
    assert missing == [], "tests without a row in docs/reliability.md"
    cases = " ".join(row[0] for row in rows)
    assert [k for k in MUTATION_KINDS if f"`{k}`" not in cases] == []
