"""One self-contained HTML page: inline CSS, images as data URIs, no script and no fetch of anything.

Report text includes strings from the dataset (alt-texts in keyword examples, URLs), which are hostile input:
everything is escaped, and the markdown of the per-analysis reports is rendered with raw HTML disabled.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 1.8rem; margin-bottom: .2rem; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .3rem;
margin-top: 2.5rem; } h3 { margin-top: 1.5rem; }
nav ol { columns: 2; } table { border-collapse: collapse; margin: .8rem 0; font-size: .86rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f3f3f5; }
.warning { border-left: 6px solid #d97706; background: #fff7e6; padding: .6rem 1rem; margin: .8rem 0; }
.missing { border-left: 6px solid #9ca3af; background: #f5f5f5; padding: .6rem 1rem; margin: .8rem 0; }
.provenance { font-size: .82rem; background: #f7f9fc; border: 1px solid #e2e8f0; padding: .5rem 1rem; }
.provenance code, td code { font-size: .8rem; word-break: break-all; }
img { max-width: 100%; height: auto; } .table-scroll { overflow-x: auto; }
"""


def escape(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def format_cell(value: object) -> tuple[str, bool]:
    """Text of a table cell and whether it is numeric: counts as integers, other numbers to 4 significant
    digits, missing values as an em dash."""
    if value is None:
        return "—", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, float):
        if value != value:  # NaN
            return "—", False
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}", True
        return f"{value:.4g}", True
    return str(value), False


def table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None,
          caption: str | None = None) -> str:
    if not rows:
        return '<p class="missing">No rows.</p>'
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{escape(column)}</th>" for column in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            text, numeric = format_cell(row.get(column))
            cells.append(f'<td class="num">{escape(text)}</td>' if numeric else f"<td>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    return (f'<div class="table-scroll"><table>{title}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def image(png: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{escape(alt)}">'


def markdown(text: str, heading_shift: int = 2) -> str:
    """A per-analysis report's markdown as HTML, raw HTML in it escaped (data-URI PNG images are kept); its
    headings move down ``heading_shift`` levels so they nest under the section's own heading."""
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return re.sub(r"<(/?)h([1-6])>", lambda m: f"<{m.group(1)}h{min(6, int(m.group(2)) + heading_shift)}>", rendered)


def box(kind: str, text: str) -> str:
    return f'<div class="{escape(kind)}">{escape(text)}</div>'


def definition_list(items: Iterable[tuple[str, str]]) -> str:
    """Label/value pairs; values are already HTML (escape them first)."""
    return "<ul>" + "".join(f"<li><strong>{escape(label)}:</strong> {value}</li>" for label, value in items) + "</ul>"


@dataclass
class Section:
    """One chapter of the report: an anchor id, a title, warnings shown above it, and its HTML body."""

    id: str
    title: str
    body: str
    warnings: list[str] = field(default_factory=list)
    provenance: str = ""

    def render(self) -> str:
        warnings = "".join(box("warning", text) for text in self.warnings)
        provenance = f'<div class="provenance">{self.provenance}</div>' if self.provenance else ""
        return (f'<section id="{escape(self.id)}" data-section="{escape(self.id)}"><h2>{escape(self.title)}</h2>'
                f"{warnings}{provenance}{self.body}</section>")


def page(title: str, subtitle: str, sections: Sequence[Section], banner: Sequence[str] = ()) -> str:
    toc = "".join(f'<li><a href="#{escape(s.id)}">{escape(s.title)}</a></li>' for s in sections)
    banners = "".join(box("warning", text) for text in banner)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        # No network and no script: nothing on the page may load from elsewhere.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>"
        f"<h1>{escape(title)}</h1><p>{escape(subtitle)}</p>{banners}<nav><h2>Contents</h2><ol>{toc}</ol></nav>"
        + "".join(section.render() for section in sections)
        + "</main></body></html>\n"
    )
