"""What the control-path benchmarks share: their result rows, quantiles, and the printed table.

Each benchmark's ``results`` is a list of rows ``{"name", "ours", "floor", "ratio", ...}``:
``floor`` is the peer measured in the same run (a bare client, an idle run), ``ratio`` ours /
floor.
"""

from __future__ import annotations

import json
import statistics
from typing import Any


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (``q`` = 1: the largest)."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1] if q < 1 else max(values)


def latency_rows(prefix: str, ours: list[float], floor: list[float]) -> list[dict[str, Any]]:
    """``<prefix>_p50_ms`` and ``<prefix>_p99_ms`` of round trips (s), ours against the floor."""
    rows = []
    for q in (0.5, 0.99):
        a, b = quantile(ours, q) * 1e3, quantile(floor, q) * 1e3
        name = f"{prefix}_p{round(q * 100)}_ms"
        rows.append({"name": name, "ours": round(a, 3), "floor": round(b, 3), "ratio": round(a / b, 2)})
    return rows


def report(results: list[dict[str, Any]], as_json: bool, floor_heading: str = "floor/idle") -> None:
    """Print ``results`` as one JSON object (``{"results": [...]}``) or as a table."""
    if as_json:
        print(json.dumps({"results": results}))
        return
    print(f"{'measure':<34} {'ours':>10} {floor_heading:>11} {'ratio':>7}")
    for r in results:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:g}"
        floor = "" if r["floor"] is None else f"{r['floor']:g}"
        print(f"{r['name']:<34} {r['ours']:>10g} {floor:>11} {ratio:>7}")
