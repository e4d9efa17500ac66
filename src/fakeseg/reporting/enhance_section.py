"""The report's ``fakeseg enhance`` section: the headline judges, a table over the set and,
per image, the triptych (input, enhanced, difference) and the heat maps before and after.

Reads only ``enhance.json`` and the figures it names inside the same folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakeseg.reporting import templates as T
from fakeseg.reporting.files import Embedder, locate, read_json

KIND = "enhance"
RESULT_FILE = "enhance.json"
TITLE = "Targeted enhancement, verified by unseen judges (enhance)"
HOW = ("The refiner (or your own enhanced frames) changed only where the training critic "
       "flagged. The headline figures come from judges it never trained against: the "
       "independent critic's mean unrealism and the pair oracle's distance to the real partner "
       "should fall, the Fréchet distance to real images should fall, and the PSNR of the "
       "unflagged pixels should stay high (≥ 40 dB: visually untouched). The training critic's "
       "own fall is optimistic: the refiner was trained to lower it.")


@dataclass
class EnhanceSection:
    html: str
    glance: list[str] = field(default_factory=list)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pct(value: Any) -> Any:
    return T.num(100 * value, 1) if T.is_number(value) else T.num(None)


def _psnr(value: Any) -> Any:
    return T.num(value, 2) if T.is_number(value) else "∞ (identical)"


def render(folder: Path, emb: Embedder) -> EnhanceSection:
    payload = _dict(read_json(folder / RESULT_FILE, folder))
    head = _dict(payload.get("headline"))
    judge = payload.get("judge_backbone") or "none given"
    rows = [
        (f"independent critic mean unrealism ({judge})", T.num(head.get(
            "independent_critic_before"), 4), T.num(head.get("independent_critic_after"), 4),
         _pct(head.get("independent_critic_fall"))),
        (f"pair oracle mean |F(R) − F(·)| ({payload.get('oracle_backbone') or 'not measured'})",
         T.num(head.get("pair_oracle_before"), 4), T.num(head.get("pair_oracle_after"), 4),
         _pct(head.get("pair_oracle_fall"))),
        (str(head.get("fd_name") or "Fréchet distance (not measured)"),
         T.num(head.get("fd_before"), 2), T.num(head.get("fd_after"), 2), T.num(None)),
        ("PSNR of critic-unflagged pixels vs input, dB", None, _psnr(
            head.get("psnr_unflagged_db")), T.num(None)),
        ("share of pixels changed, %", None, _pct(head.get("changed_share")), T.num(None)),
        ("training critic mean unrealism (optimistic: G trained against it)", None, None,
         _pct(head.get("training_critic_fall_optimistic"))),
    ]
    parts = [f"<p>Mode: <b>{T.esc(payload.get('mode', '?'))}</b>; command: "
             f"<code>{T.esc(payload.get('command', ''))}</code></p>",
             T.table(("figure", "before", "after", "fall, %"), rows, digits=4)]
    images = [_dict(i) for i in payload.get("images", []) if isinstance(i, dict)]
    parts.append(T.table(
        ("image", "judge before", "judge after", "oracle before", "oracle after",
         "critic before", "critic after", "PSNR unflagged, dB", "changed, %"),
        [(str(i.get("name")), T.num(i.get("judge_before"), 4), T.num(i.get("judge_after"), 4),
          T.num(i.get("oracle_before"), 4), T.num(i.get("oracle_after"), 4),
          T.num(i.get("critic_before"), 4), T.num(i.get("critic_after"), 4),
          _psnr(i.get("psnr_unflagged_db")), _pct(i.get("changed_share"))) for i in images]))
    notes = [str(n) for n in payload.get("notes", []) if isinstance(n, str)]
    if notes:
        parts.append("<ul>" + "".join(f'<li class="note">{T.esc(n)}</li>' for n in notes)
                     + "</ul>")
    for row in (_dict(r) for r in payload.get("files", [])):
        name = str(row.get("name", "?"))
        parts.append(f"<h4>{T.esc(name)}</h4>")
        for key, caption in (("triptych", "input · enhanced · |difference|"),
                             ("heat", "heat maps before and after (training critic, "
                                      "independent critic)")):
            found = locate(row.get(key), folder)
            parts.append(emb.figure(found.path, folder, T.esc(caption)) if found.path
                         else T.warn_box(f"{name} {key}: {found.problem}"))
    parts.append(T.provenance(payload.get("config"), _dict(payload.get("versions"))))
    glance = []
    if T.is_number(head.get("independent_critic_fall")):
        glance.append(f"Enhancement: independent critic's unrealism fell "
                      f"{_pct(head.get('independent_critic_fall'))} %, the pair-oracle "
                      f"distance fell {_pct(head.get('pair_oracle_fall'))} % (negative: rose) "
                      f"over {len(images)} image(s).")
    return EnhanceSection("".join(parts), glance)
