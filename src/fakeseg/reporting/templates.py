"""HTML building blocks for the report: the page, escaping helpers and a pipe-table converter.

Everything here returns strings; nothing reads files. No external URL, font or script is ever
emitted, so the page renders the same offline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

CSS = """
:root { --ink: #1d232b; --muted: #5b6573; --line: #dde2e8; --accent: #2f5d8c;
        --bad: #a40e0e; --bad-bg: #fde8e7; --soft: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; background: #eef1f5; color: var(--ink);
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 24px auto; background: #fff; padding: 28px 40px 48px;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.08); }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 40px 0 6px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 17px; margin: 26px 0 6px; }
h4 { font-size: 15px; margin: 18px 0 6px; }
a { color: var(--accent); }
.meta { color: var(--muted); font-size: 13px; margin: 0 0 14px; }
.how { color: var(--muted); font-style: italic; margin: 2px 0 14px; }
.src { color: var(--muted); font-size: 12.5px; font-family: ui-monospace, Menlo, Consolas,
       monospace; word-break: break-all; }
nav.toc { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
          padding: 10px 18px; margin: 14px 0 8px; }
nav.toc ol { margin: 4px 0; padding-left: 22px; }
nav.toc li { margin: 2px 0; }
nav.toc ol ol { font-size: 13px; }
.glance { border-left: 4px solid var(--accent); background: var(--soft); padding: 8px 16px;
          margin: 14px 0; }
.glance ul { margin: 4px 0; padding-left: 20px; }
.flag { color: var(--bad); background: var(--bad-bg); font-weight: 700; padding: 1px 6px;
        border-radius: 4px; }
.banner { color: var(--bad); background: var(--bad-bg); border: 1px solid #f3b5b1;
          padding: 10px 14px; border-radius: 6px; font-weight: 600; margin: 12px 0; }
.warn { color: #7a4b00; background: #fff4dc; padding: 6px 10px; border-radius: 4px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
         vertical-align: top; }
td:first-child { white-space: nowrap; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) td { background: #fafbfc; }
.scroll { overflow-x: auto; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; }
.cards { display: grid; gap: 18px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card h4 { margin: 0 0 6px; }
.card img { max-width: 100%; height: auto; display: block; border-radius: 3px; }
.card table { font-size: 12.5px; width: 100%; }
.figs { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
.figs figure { margin: 0; }
details { margin: 8px 0 14px; }
summary { cursor: pointer; color: var(--accent); font-size: 13.5px; }
pre { background: var(--soft); border: 1px solid var(--line); padding: 10px; font-size: 12px;
      overflow-x: auto; max-height: 420px; }
code { font-size: 90%; background: var(--soft); padding: 0 3px; border-radius: 3px; }
.note { color: var(--muted); font-size: 13px; }
"""


def esc(value: Any) -> str:
    """HTML-escaped text (quotes too)."""
    return escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table cell: fixed digits, tiny values in scientific form, None as –."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], *, digits: int = 3,
          raw: bool = False) -> str:
    """An HTML table; numbers are formatted and right-aligned. ``raw``: cells are HTML."""
    rows = [list(r) for r in rows]
    numeric = [bool(rows) and all(is_number(r[i]) or r[i] is None for r in rows)
               for i in range(len(head))]
    out = ['<div class="scroll"><table><thead><tr>']
    out += [f'<th{" class=num" if numeric[i] else ""}>{esc(h)}</th>' for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = []
        for value in row:
            text = value if raw and isinstance(value, str) else esc(fmt(value, digits))
            cells.append(f'<td class="num">{text}</td>' if is_number(value) else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def key_values(pairs: Mapping[str, Any], *, digits: int = 3,
               head: tuple[str, str] = ("", "value")) -> str:
    """A two-column table of ``name: value``."""
    return table(head, ((k, v) for k, v in pairs.items()), digits=digits)


def details(summary: str, body_html: str, *, open_: bool = False) -> str:
    return (f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>"
            f"{body_html}</details>")


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def pretty_config(value: Any) -> str:
    """A config as compact YAML (short lists inline), or JSON if YAML cannot hold it."""
    import yaml

    try:
        text = yaml.safe_dump(value, sort_keys=False, default_flow_style=None, width=96,
                              allow_unicode=True)
    except yaml.YAMLError:
        text = json.dumps(value, indent=2, sort_keys=False, default=str)
    return pre(text)


def provenance(config: Any, versions: Mapping[str, Any] | None, *, config_text: str | None = None,
               label: str = "config and versions") -> str:
    """The collapsible block every section carries: what produced these results."""
    parts = []
    if config_text is not None:
        parts.append("<h4>config</h4>" + pre(config_text))
    elif config:
        parts.append("<h4>config</h4>" + pretty_config(config))
    if versions:
        parts.append("<h4>versions</h4>" + key_values(versions, head=("", "version")))
    else:
        parts.append('<p class="note">versions were not recorded by this output</p>')
    return details(label, "".join(parts))


def figure(data_uri: str, caption: str = "", *, href: str | None = None, width: int | None = None,
           alt: str = "") -> str:
    """An embedded image, linked to its full-size file when ``href`` is given."""
    size = f' width="{width}"' if width else ""
    img = f'<img src="{data_uri}" alt="{esc(alt or caption)}"{size}>'
    if href:
        img = f'<a href="{esc(href)}">{img}</a>'
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure>{img}{cap}</figure>"


def flag(text: str) -> str:
    return f'<span class="flag">{esc(text)}</span>'


def weights_tag(tag: str | None) -> str:
    """A weights tag as HTML; random weights are flagged loudly."""
    if tag is None:
        return '<span class="note">not recorded</span>'
    if str(tag).lower() == "random":
        return flag("RANDOM weights: not a realism measure")
    return f"<code>{esc(tag)}</code>"


# --------------------------------------------------------------------------- markdown


_INLINE = ((re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
           (re.compile(r"`([^`]+)`"), r"<code>\1</code>"))


def inline_markdown(text: str) -> str:
    """Escape, then render **bold** and `code`."""
    html = esc(text)
    for pattern, replacement in _INLINE:
        html = pattern.sub(replacement, html)
    return html


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [cell.strip() for cell in line.split("|")]


def _is_rule(line: str) -> bool:
    return bool(re.fullmatch(r"\|?(\s*:?-{1,}:?\s*\|)*\s*:?-{1,}:?\s*\|?", line.strip()))


def _number(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?(\s*±\s*[-+]?\d+(\.\d+)?(e[-+]?\d+)?)?",
                             text.strip(), flags=re.IGNORECASE)) or text.strip() == "–"


def _table_html(rows: list[list[str]]) -> str:
    head, body = rows[0], rows[1:]
    width = len(head)
    body = [(r + [""] * width)[:width] for r in body]
    numeric = [bool(body) and all(_number(r[i]) for r in body) for i in range(width)]
    out = ['<div class="scroll"><table><thead><tr>']
    out += [f'<th{" class=num" if numeric[i] else ""}>{inline_markdown(h)}</th>'
            for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for row in body:
        out.append("<tr>" + "".join(
            f'<td{" class=num" if numeric[i] else ""}>{inline_markdown(c)}</td>'
            for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def markdown_to_html(text: str, *, skip_title: bool = True, heading_offset: int = 2) -> str:
    """A tiny Markdown subset: ``#`` headings, pipe tables, ``-`` lists and paragraphs.

    ``skip_title`` drops a level-1 heading (the report's section already names it);
    ``heading_offset`` demotes the rest (``##`` → ``h4`` by default).
    """
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        heading = re.match(r"(#{1,6})\s+(.*)", stripped)
        if heading:
            level = len(heading.group(1))
            if not (skip_title and level == 1):
                tag = f"h{min(level + heading_offset, 6)}"
                out.append(f"<{tag}>{inline_markdown(heading.group(2))}</{tag}>")
            i += 1
            continue
        if stripped.startswith("|") and i + 1 < len(lines) and _is_rule(lines[i + 1]):
            rows = [_cells(stripped)]
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.append(_table_html(rows))
            continue
        if stripped.startswith(("- ", "* ")):
            items = []
            while i < len(lines) and lines[i].strip().startswith(("- ", "* ")):
                items.append(f"<li>{inline_markdown(lines[i].strip()[2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        paragraph = []
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(
                ("#", "|", "- ", "* ")):
            paragraph.append(lines[i].strip())
            i += 1
        if not paragraph:  # a stray table row without a rule line
            paragraph.append(stripped)
            i += 1
        out.append(f'<p class="note">{inline_markdown(" ".join(paragraph))}</p>')
    return "\n".join(out)


# --------------------------------------------------------------------------- the page


def page(title: str, subtitle_html: str, toc_html: str, body_html: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>{esc(title)}</h1>
{subtitle_html}
{toc_html}
{body_html}
</main>
</body>
</html>
"""
