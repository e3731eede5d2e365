"""HTML fragments every report section writes the same way: an embedded PNG, a table, a cell."""

from __future__ import annotations

import base64
import html
import math

import numpy as np
import pandas as pd


def img(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def table(df: pd.DataFrame) -> str:
    if df.empty:
        return '<p class="note">nothing to show</p>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = "".join(f"<td>{html.escape(fmt(v))}</td>" for v in r.tolist())
        rows.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float | np.floating):
        return f"{v:.3f}"
    return str(v)
