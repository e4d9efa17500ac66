"""HTML building blocks for the report: the page, validated numbers, escaping, tables, figures.

Everything here returns strings; nothing reads files. Every value from a result file passes
through :func:`esc` or :func:`num` before it reaches the page. No external URL, font or script is
ever emitted, so the page renders the same offline and is safe to share.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from html import escape
from typing import Any

from fakeseg.numbers import fmt

CSS = """
:root { --ink: #1d232b; --muted: #5b6573; --line: #dde2e8; --accent: #2f5d8c;
        --bad: #a40e0e; --bad-bg: #fde8e7; --soft: #f5f7fa; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: #eef1f5; color: var(--ink);
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 24px auto; background: #fff; padding: 28px 40px 48px;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.08); }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 40px 0 6px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 17px; margin: 26px 0 6px; }
h4 { font-size: 15px; margin: 18px 0 6px; }
h1, h2, h3, h4, p, li, dd, summary, figcaption, code { overflow-wrap: anywhere; }
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
.glance li { margin: 3px 0; }
.flag { color: var(--bad); background: var(--bad-bg); font-weight: 700; padding: 1px 6px;
        border-radius: 4px; }
.banner { color: var(--bad); background: var(--bad-bg); border: 1px solid #f3b5b1;
          padding: 10px 14px; border-radius: 6px; font-weight: 600; margin: 12px 0; }
.warn { color: #7a4b00; background: #fff4dc; padding: 6px 10px; border-radius: 4px; }
.invalid { color: var(--bad); font-style: italic; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
         vertical-align: top; }
td:first-child { white-space: nowrap; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfc; }
tr:target td { background: #fff7cc; }
figure { margin: 10px 0 18px; max-width: 100%; min-width: 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line);
             border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; }
figure .close { display: none; }
figure.zoom:target { position: fixed; inset: 0; z-index: 10; margin: 0; padding: 10px;
                     overflow: auto; background: rgba(18, 20, 24, .95); }
figure.zoom:target img { max-width: none; border: 0; }
figure.zoom:target figcaption { color: #e8ecf1; }
figure.zoom:target figcaption a { color: #9cc3ec; }
figure.zoom:target .close { display: inline-block; position: sticky; top: 0; left: 0;
                            margin-bottom: 8px; padding: 4px 12px; border-radius: 4px;
                            background: #fff; color: var(--ink); font-weight: 600; }
.cards { display: grid; gap: 18px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; min-width: 0; }
.card h4 { margin: 0 0 6px; }
.card figure { margin: 0 0 6px; }
.card table { font-size: 12.5px; width: 100%; }
.figs { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
.figs figure { margin: 0; }
.cbar { font-size: 12px; color: var(--muted); margin: 4px 0 10px; max-width: 420px; }
.cbar .ramp { position: relative; height: 12px; border: 1px solid var(--line); }
.cbar .ramp i { position: absolute; top: -4px; bottom: -4px; width: 3px; margin-left: -1px;
                background: #fff; border: 1px solid #000; }
.cbar .ticks { display: flex; justify-content: space-between; }
details { margin: 8px 0 14px; }
summary { cursor: pointer; color: var(--accent); font-size: 13.5px; }
pre { background: var(--soft); border: 1px solid var(--line); padding: 10px; font-size: 12px;
      overflow-x: auto; max-height: 420px; max-width: 100%; }
code { font-size: 90%; background: var(--soft); padding: 0 3px; border-radius: 3px; }
.note { color: var(--muted); font-size: 13px; }
@media (max-width: 700px) {
  body { font-size: 14px; }
  main { margin: 0; padding: 14px 12px 32px; border-radius: 0; box-shadow: none; }
  h1 { font-size: 22px; }
  h2 { font-size: 19px; margin-top: 28px; }
  nav.toc { padding: 8px 10px; }
  nav.toc ol { padding-left: 18px; }
  .glance { padding: 6px 10px; }
  .glance ul { padding-left: 16px; }
}
"""


class Raw(str):
    """HTML the report built itself (already escaped); table cells insert it as is."""


@dataclass(frozen=True)
class Num:
    """A number read from a result file, validated and formatted once.

    ``text`` is what every table and the "At a glance" box print for it, so a headline number
    is the same string as its table cell. ``invalid``: the file held something that is not a
    finite number there (a string, a list, NaN); it is shown as "invalid", never inserted.
    """

    value: float | int | None
    text: str
    invalid: bool = False

    def __str__(self) -> str:
        return self.text


INVALID_HTML = '<span class="invalid" title="not a finite number in the result file">invalid</span>'


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def num(value: Any, digits: int = 3) -> Num:
    """Validate a value that must be a number: finite int/float → formatted, None → "–",
    anything else (strings, bools, lists, NaN, inf) → invalid."""
    if isinstance(value, Num):
        return value
    if value is None:
        return Num(None, "–")
    if not is_number(value) or not math.isfinite(value):
        return Num(None, INVALID_HTML, invalid=True)
    return Num(value, esc(fmt(value, digits)))


def esc(value: Any) -> str:
    """HTML-escaped text (quotes too)."""
    return escape("" if value is None else str(value), quote=True)


def cell_html(value: Any, digits: int = 3) -> str:
    """One value as safe HTML: Raw as is, numbers formatted, everything else escaped."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Num):
        return value.text
    if is_number(value):
        return num(value, digits).text
    return esc(fmt(value, digits))


def _numeric(value: Any) -> bool:
    return isinstance(value, Num) or is_number(value) or value is None


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], *, digits: int = 3,
          row_ids: Sequence[str | None] | None = None) -> str:
    """An HTML table inside its own horizontal scroller; numbers right-aligned.

    Cells: :class:`Raw` (trusted HTML), :class:`Num`, plain numbers, None, or anything else
    (shown as escaped text). Nothing from a result file is ever inserted unescaped.
    """
    rows = [list(r) for r in rows]
    numeric = [bool(rows) and all(_numeric(r[i]) for r in rows) for i in range(len(head))]
    out = ['<div class="scroll"><table><thead><tr>']
    out += [f'<th{" class=num" if numeric[i] else ""}>{esc(h)}</th>' for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for index, row in enumerate(rows):
        row_id = row_ids[index] if row_ids else None
        cells = [f'<td class="num">{cell_html(v, digits)}</td>' if _numeric(v) and v is not None
                 else f"<td>{cell_html(v, digits)}</td>" for v in row]
        out.append((f'<tr id="{esc(row_id)}">' if row_id else "<tr>") + "".join(cells) + "</tr>")
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


def figure(data_uri: str, caption: str = "", *, fig_id: str, href: str | None = None,
           alt: str = "", full_note: str = "") -> str:
    """An embedded image that opens full size inside the page (CSS ``:target``, no script).

    ``caption`` is HTML; ``href``: a relative link to the file it was made from (shown as
    "file"); ``full_note`` says what "full size" is (e.g. "embedded at 1600 px").
    """
    fid = esc(fig_id)
    links = [f'<a href="#{fid}">full size</a>' + (f" ({esc(full_note)})" if full_note else "")]
    if href:
        links.append(f'<a href="{esc(href)}">file</a>')
    cap = " · ".join(([caption] if caption else []) + links)
    return (f'<figure class="zoom" id="{fid}"><a class="close" href="#{fid}-back">close ✕</a>'
            f'<a href="#{fid}"><img src="{data_uri}" alt="{esc(alt)}"></a>'
            f'<figcaption id="{fid}-back">{cap}</figcaption></figure>')


@cache
def _gradient(cmap: str) -> str:
    from matplotlib import colormaps

    stops = [colormaps[cmap](i / 10)[:3] for i in range(11)]
    return ", ".join("#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in rgb))
                     for rgb in stops)


def colorbar(label: str, *, low: str = "0", high: str = "1", cmap: str = "inferno",
             marks: Sequence[tuple[float, str]] = ()) -> str:
    """A colour bar drawn in CSS: ``label`` (HTML) above a ``cmap`` ramp from ``low`` to
    ``high``; ``marks``: (position in [0, 1], title) ticks such as the threshold."""
    ticks = "".join(f'<i style="left:{100 * min(max(float(p), 0.0), 1.0):.2f}%" '
                    f'title="{esc(t)}"></i>' for p, t in marks if math.isfinite(float(p)))
    return (f'<div class="cbar">{label}<div class="ramp" style="background: linear-gradient('
            f'to right, {_gradient(cmap)})">{ticks}</div><div class="ticks"><span>{esc(low)}'
            f"</span><span>{esc(high)}</span></div></div>")


def warn_box(text: str) -> str:
    """A placeholder or warning paragraph (plain text, escaped)."""
    return f'<p class="warn">{esc(text)}</p>'


def flag(text: str) -> str:
    return f'<span class="flag">{esc(text)}</span>'


def weights_tag(tag: str | None) -> str:
    """A weights tag as HTML; random weights are flagged loudly."""
    if tag is None:
        return '<span class="note">not recorded</span>'
    if str(tag).lower() == "random":
        return flag("RANDOM weights: not a realism measure")
    return f"<code>{esc(tag)}</code>"


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
