"""A tiny document model (headings, paragraphs, tables, pictures, lists) rendered to Markdown
and to a self-contained HTML page, so ``report.md`` and ``report.html`` always say the same."""

import html
from dataclasses import dataclass, field

from tabulate import tabulate


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    """headers: column titles; rows: lists of cells (str/number); caption: text above it."""

    headers: list
    rows: list
    caption: str = ""
    align: tuple = ()

    def text(self, table_format="pretty"):
        """The table as plain text (terminal) in tabulate's ``table_format``."""
        return tabulate(
            self.rows,
            headers=self.headers,
            tablefmt=table_format,
            disable_numparse=True,
            colalign=self._colalign(),
        )

    def _colalign(self):
        return self.align or ("left",) + ("right",) * (len(self.headers) - 1)


@dataclass
class Picture:
    """path: relative to the report; caption: one line under it; width: HTML pixels or None."""

    path: str
    caption: str = ""
    width: int | None = None


@dataclass
class BulletList:
    items: list = field(default_factory=list)


def to_markdown(blocks):
    """Render ``blocks`` as GitHub-flavoured Markdown."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Table):
            caption = f"{block.caption}\n\n" if block.caption else ""
            parts.append(
                caption
                + tabulate(
                    block.rows,
                    headers=block.headers,
                    tablefmt="github",
                    disable_numparse=True,
                    colalign=block._colalign(),
                )
            )
        elif isinstance(block, Picture):
            parts.append(
                f"![{block.caption}]({block.path})"
                + (f"\n\n*{block.caption}*" if block.caption else "")
            )
        elif isinstance(block, BulletList):
            parts.append("\n".join(f"- {item}" for item in block.items))
        else:
            raise TypeError(f"unknown block {type(block).__name__}")
    return "\n\n".join(parts) + "\n"


STYLE = """body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; line-height: 1.4 }
table { border-collapse: collapse; margin: 0.5em 0 1.5em }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right }
th:first-child, td:first-child { text-align: left }
img { max-width: 100%; border: 1px solid #ddd }
figcaption { font-style: italic; margin-bottom: 1.5em }
"""


def _table_html(block):
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in block.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
        for row in block.rows
    )
    caption = f"<p>{html.escape(block.caption)}</p>\n" if block.caption else ""
    return f"{caption}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(blocks, title):
    """Render ``blocks`` as one HTML page (pictures linked by relative path)."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            parts.append(_table_html(block))
        elif isinstance(block, Picture):
            width = f' width="{block.width}"' if block.width else ""
            parts.append(
                f'<figure><img src="{html.escape(block.path)}" '
                f'alt="{html.escape(block.caption)}"{width}>'
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, BulletList):
            items = "".join(f"<li>{html.escape(str(item))}</li>" for item in block.items)
            parts.append(f"<ul>{items}</ul>")
        else:
            raise TypeError(f"unknown block {type(block).__name__}")
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
