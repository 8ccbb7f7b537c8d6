"""Summarises a py-spy flame graph (SVG): where the samples are, as text.

    python -m bench.flame bench/results/page-graphql-server.svg [--top 25]

Prints the functions with the most samples *inside* them (inclusive) and the
ones that are *themselves* on CPU (self: a frame's width minus its callees').
Idle frames (the event loop waiting in select/epoll) are shown, not removed:
their share says how much of the time the process had nothing to do.
"""

from __future__ import annotations

import argparse
import html
import re
from collections import defaultdict
from pathlib import Path

_FRAME = re.compile(
    r'<g><title>(?P<title>[^<]*)</title><rect x="(?P<x>[\d.]+)%" y="(?P<y>[\d.]+)" '
    r'width="(?P<w>[\d.]+)%"'
)
_SAMPLES = re.compile(r"^(?P<name>.*) \((?P<n>[\d,]+) samples?, (?P<pct>[\d.]+)%\)$")


def frames(svg: str) -> list[dict]:
    out = []
    for m in _FRAME.finditer(svg):
        title = html.unescape(m.group("title"))
        s = _SAMPLES.match(title)
        if not s:
            continue
        out.append(
            {
                "name": s.group("name"),
                "samples": int(s.group("n").replace(",", "")),
                "x": float(m.group("x")),
                "w": float(m.group("w")),
                "y": float(m.group("y")),
            }
        )
    return out


def summarise(path: Path, top: int = 25) -> dict:
    found = frames(path.read_text(errors="replace"))
    if not found:
        return {"total": 0, "inclusive": [], "self": []}
    total = max(f["samples"] for f in found)
    levels = sorted({f["y"] for f in found})
    step = min((b - a for a, b in zip(levels, levels[1:], strict=False)), default=0) or 1
    by_level: dict[float, list[dict]] = defaultdict(list)
    for f in found:
        by_level[f["y"]].append(f)
    # a frame's callees sit one level further from the root ("all"), whichever way the graph grows
    root_y = max(found, key=lambda f: f["samples"])["y"]
    direction = step if root_y <= min(levels) else -step
    self_samples: dict[str, float] = defaultdict(float)
    for f in found:
        kids = [
            c
            for c in by_level.get(f["y"] + direction, [])
            if c["x"] >= f["x"] - 1e-6 and c["x"] + c["w"] <= f["x"] + f["w"] + 1e-6
        ]
        share = max(0.0, f["w"] - sum(c["w"] for c in kids)) / f["w"] if f["w"] else 0.0
        self_samples[f["name"]] += f["samples"] * share
    sums: dict[str, int] = defaultdict(int)
    for f in found:
        sums[f["name"]] += f["samples"]
    # inclusive: frames of one function never overlap unless recursive; summing is close enough
    inclusive = {k: min(v, total) for k, v in sums.items()}
    rank = lambda d: sorted(d.items(), key=lambda kv: -kv[1])[:top]  # noqa: E731
    return {
        "total": total,
        "inclusive": [(n, round(100 * v / total, 1)) for n, v in rank(inclusive)],
        "self": [(n, round(100 * v / total, 1)) for n, v in rank(self_samples)],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("svg", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.svg:
        s = summarise(path, args.top)
        print(f"== {path} ({s['total']} samples)")
        print("-- self (on CPU in the function itself)")
        for name, pct in s["self"]:
            print(f"{pct:6.1f}%  {name}")
        print("-- inclusive")
        for name, pct in s["inclusive"]:
            print(f"{pct:6.1f}%  {name}")


if __name__ == "__main__":
    main()
