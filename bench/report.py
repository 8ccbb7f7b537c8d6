"""Turns the results into ``latest.json`` and a Markdown table (``latest.md``)."""

from __future__ import annotations

TARGETS = {
    "page_ratio": 0.9,
    "page_cpu_ratio": 1.5,
    "fanout_cpu_us_per_delivery": 20,
    "fanout_p99_ms": 500,
    "inbound_msgs_per_s": 300,
    "grab_p99_ms": 200,
}


def _fmt(value, unit: str = "", digits: int = 1) -> str:
    """Whole numbers from 100 up (with thousands separators), ``digits`` decimals below."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        value = int(round(value)) if abs(value) >= 100 else round(value, digits)
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _kinds(per_run: list[dict]) -> str:
    kinds: dict[str, int] = {}
    for run in per_run:
        for k, v in run.get("error_kinds", {}).items():
            k = k.split(":")[0] if k.startswith("GraphQL") else k
            kinds[k] = kinds.get(k, 0) + v
    return (" (" + ", ".join(f"{k}: {v}" for k, v in kinds.items()) + ")") if kinds else ""


def rows(results: dict) -> list[tuple[str, str, str, str, str]]:
    """(benchmark, measured, target, met, notes)"""
    out = []
    b = results.get("benchmarks", {})
    page = b.get("page")
    if page and "error" not in page:
        g, f = page["graphql"], page["floor"]
        ratio = page["ratio_graphql_to_floor"]["median"]
        out.append(
            (
                "1. Conversation page, GraphQL `conversations(first: 50)`, 32 clients",
                f"{_fmt(g['rps']['median'])} req/s, p50 {_fmt(g['p50_ms']['median'], ' ms')}, "
                f"p99 {_fmt(g['p99_ms']['median'], ' ms')}",
                "",
                "",
                f"{page['runs']} runs x {page['duration_s']} s; failed requests {g['errors']}" + _kinds(g["per_run"]),
            )
        )
        out.append(
            (
                "1. Floor: bare Starlette route, same MongoDB commands",
                f"{_fmt(f['rps']['median'])} req/s, p50 {_fmt(f['p50_ms']['median'], ' ms')}, "
                f"p99 {_fmt(f['p99_ms']['median'], ' ms')}",
                "",
                "",
                f"alternating windows with GraphQL; failed requests {f['errors']}" + _kinds(f["per_run"]),
            )
        )
        out.append(
            (
                "1. Ratio GraphQL / floor (req/s)",
                _fmt(ratio, "", 2),
                f">= {TARGETS['page_ratio']}",
                _met(ratio >= TARGETS["page_ratio"] if ratio is not None else None),
                f"per run {page['ratio_graphql_to_floor']['runs']}; where the time goes: NOTES 1"
                + (
                    f"; restarted after it stopped answering: GraphQL server "
                    f"{page['restarts_after_wedging']['graphql']}x, "
                    f"floor {page['restarts_after_wedging']['floor']}x"
                    if "restarts_after_wedging" in page
                    else ""
                ),
            )
        )
        cpu = page.get("cpu_ratio_graphql_to_floor")
        if cpu:
            g_cpu, f_cpu = g["server_cpu_ms_per_page"]["median"], f["server_cpu_ms_per_page"]["median"]
            out.append(
                (
                    "1. **Server CPU per page** (user+sys of the server process / pages answered), GraphQL vs floor",
                    f"{_fmt(g_cpu, ' ms', 2)} vs {_fmt(f_cpu, ' ms', 2)}: **{_fmt(cpu['median'], 'x', 2)}**",
                    f"<= {TARGETS['page_cpu_ratio']}x",
                    _met(cpu["median"] <= TARGETS["page_cpu_ratio"] if cpu["median"] is not None else None),
                    f"per run {cpu['runs']}; GraphQL per run {g['server_cpu_ms_per_page']['runs']} ms, "
                    f"floor {f['server_cpu_ms_per_page']['runs']} ms; on real MongoDB the server's CPU is the limit",
                )
            )
        c = page["mongodb_commands_per_request"]
        out.append(
            (
                "1. MongoDB commands per page request",
                f"{c['graphql']} (floor {c['floor']})",
                "",
                "",
                ", ".join(c["graphql_commands"]),
            )
        )
    elif page:
        out.append(("1. Conversation page", "failed", "", "", page["error"]))
    inbound = b.get("inbound")
    if inbound and "error" not in inbound:
        rate = inbound["msgs_per_s"]["median"]
        out.append(
            (
                "2. Inbound burst, 32 posters, 2,000 customers",
                f"{_fmt(rate)} msg/s, p50 {_fmt(inbound['p50_ms']['median'], ' ms')}, "
                f"p99 {_fmt(inbound['p99_ms']['median'], ' ms')}",
                f">= {TARGETS['inbound_msgs_per_s']} msg/s",
                _met(rate >= TARGETS["inbound_msgs_per_s"] if rate is not None else None),
                f"{inbound['runs']} runs x {inbound['duration_s']} s; non-202: {inbound['non_202']}"
                + (
                    f"; server CPU {_fmt(inbound['server_cpu_ms_per_msg']['median'], ' ms', 2)} per message"
                    if inbound.get("server_cpu_ms_per_msg")
                    else ""
                ),
            )
        )
        floor = inbound.get("floor")
        if floor:
            out.append(
                (
                    "2. Inbound floor: bare route, takes a sequence number and inserts the message "
                    f"({floor['commands_per_message']} commands), same posters and database",
                    f"{_fmt(floor['msgs_per_s']['median'])} msg/s, p50 {_fmt(floor['p50_ms']['median'], ' ms')}, "
                    f"p99 {_fmt(floor['p99_ms']['median'], ' ms')}",
                    "",
                    "",
                    f"ratio server / floor {inbound['ratio_to_floor']['median']} "
                    f"(per run {inbound['ratio_to_floor']['runs']})"
                    + (
                        f"; floor CPU {_fmt(floor['server_cpu_ms_per_msg']['median'], ' ms', 2)} per message, "
                        f"server / floor CPU {inbound['cpu_ratio_to_floor']['median']}x"
                        if floor.get("server_cpu_ms_per_msg")
                        else ""
                    ),
                )
            )
        c = inbound["mongodb_commands_per_message"]
        out.append(
            (
                "2. MongoDB commands per inbound message",
                ", ".join(f"{k.replace('_', ' ')}: {v['count']}" for k, v in c.items()),
                "",
                "",
                "",
            )
        )
    elif inbound:
        out.append(("2. Inbound burst", "failed", "", "", inbound["error"]))
    fanout = b.get("fanout")
    if fanout and "error" not in fanout:
        for key, label in (("sizes", ""), ("unshared_sizes", ", shared execution OFF (for comparison)")):
            for n, r in fanout.get(key, {}).items():
                out.append(_fanout_row(results, n, r, label))
    elif fanout:
        out.append(("3. Fan-out", "failed", "", "", fanout["error"]))
    grab = b.get("grab")
    if grab and "error" not in grab:
        lat = grab["latency_all_requests"]
        w = grab["winners_per_round"]
        out.append(
            (
                f"4. Grab contention, {grab['contenders']} representatives x {grab['rounds']} rounds",
                f"winners per round {w['min']}..{w['max']}; p50 {_fmt(lat['p50_ms'], ' ms')}, "
                f"p99 {_fmt(lat['p99_ms'], ' ms')}",
                f"1 winner, p99 < {TARGETS['grab_p99_ms']} ms",
                _met(w["all_exactly_one"] and lat["p99_ms"] is not None and lat["p99_ms"] < TARGETS["grab_p99_ms"]),
                f"round wall time median {grab['round_wall_s']['median']} s"
                + (
                    f"; server CPU {_fmt(grab['server_cpu_ms_per_grab'], ' ms', 2)} per grab request (no floor)"
                    if grab.get("server_cpu_ms_per_grab") is not None
                    else ""
                ),
            )
        )
    elif grab:
        out.append(("4. Grab contention", "failed", "", "", grab["error"]))
    cross = b.get("cross")
    if cross and "error" not in cross and "summary" in cross:
        s = cross["summary"]
        stale = sum(r.get("stale_events_received", 0) for r in cross.get("rounds", []))
        out.append(
            (
                f"5. Cross-instance: post on A, {cross['connect']['connected']} subscribers on B",
                f"p50 {_fmt(s['p50_ms_median'], ' ms')}, p99 {_fmt(s['p99_ms_median'], ' ms')}, lost {s['lost']}",
                "",
                "",
                f"{s['rounds']} rounds, ~{_fmt(s['events_per_s_median'])} events/s; "
                f"old events B re-sent as live, ignored: {stale:,} (NOTES-2026-11-25 5)",
            )
        )
    elif cross:
        out.append(("5. Cross-instance", "failed", "", "", cross.get("error", "")))
    if b.get("delivery"):
        from bench.delivery import rows as delivery_rows

        out += delivery_rows(b["delivery"])
    if b.get("widget"):
        from bench.widget import rows as widget_rows

        out += widget_rows(b["widget"])
    return out


def markdown(results: dict) -> str:
    m = results["machine"]
    sizes = results.get("dataset", {}).get("sizes", {})
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Scale: **{results['scale_label']}** ({results['scale']:g} of the issue's full data set): "
        + ", ".join(f"{v:,} {k}" for k, v in sizes.items())
        + f". Seeding took {results.get('dataset', {}).get('timings', {}).get('total_s', 'n/a')} s.",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu_model']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"{m['date']}; load average at start {m['loadavg_at_start']} (other work shares this machine). "
        f"Server code at commit `{m.get('git_commit')}`"
        + (
            f" with uncommitted changes to {', '.join(m['uncommitted_server_changes'])}"
            if m.get("uncommitted_server_changes")
            else ""
        )
        + ". "
        "Server, embedded database (nx-27017, itself Python over SQLite) and load generators all share the "
        "same cores.",
        "",
        "| Benchmark | Measured (median of runs) | Target | Met | Notes |",
        "|---|---|---|---|---|",
    ]
    for name, measured, target, met, notes in rows(results):
        lines.append(f"| {name} | {measured} | {target} | {met} | {notes} |")
    lines += [
        "",
        f"Total wall time: {results.get('wall_s', 'n/a')} s. Details: `{results.get('output', 'latest')}.json`; "
        "where the time goes: `NOTES.md`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Re-renders a Markdown table from its JSON: ``python -m bench.report [latest|profile]``."""
    import json
    import sys

    from bench.common import RESULTS

    name = sys.argv[1] if len(sys.argv) > 1 else "latest"
    results = json.loads((RESULTS / f"{name}.json").read_text())
    (RESULTS / f"{name}.md").write_text(markdown(results))
    print(markdown(results))


def _fanout_row(results: dict, n: str, r: dict, label: str) -> tuple[str, str, str, str, str]:
    if "error" in r or "summary" not in r:
        return (f"3. Fan-out, {n} subscribers{label}", "failed", "", "", r.get("error", ""))
    s = r["summary"]
    p99 = s["p99_ms_median"]
    target = f"p99 < {TARGETS['fanout_p99_ms']} ms, 0 lost" + (" (target set for 10,000)" if n != "10000" else "")
    ok = p99 is not None and p99 < TARGETS["fanout_p99_ms"] and s["lost"] == 0 and s["unexpected"] == 0
    per_event = s.get("recipients_per_event")
    return (
        f"3. Fan-out, {r['connect']['connected']:,} subscribers{label}, driver at "
        f"{_fmt(results['benchmarks']['fanout']['rate_target'])} events/s "
        f"(achieved {_fmt(s['events_per_s_median'])})",
        f"p50 {_fmt(s['p50_ms_median'], ' ms')}, p99 {_fmt(p99, ' ms')}, lost {s['lost']}, "
        f"unexpected {s['unexpected']}; server {_fmt(s['server_rss_mb_max'], ' MB')} RSS, "
        f"{_fmt(s['server_cpu_pct_max'], '%')} CPU"
        + (
            f"; **{_fmt(s['server_cpu_us_per_delivery'], ' µs')} server CPU per delivery** "
            f"(target <= {TARGETS['fanout_cpu_us_per_delivery']} µs; no floor)"
            + (
                f", {_fmt(s['clients_cpu_us_per_delivery'], ' µs')} for the subscriber side"
                if s.get("clients_cpu_us_per_delivery") is not None
                else ""
            )
            if s.get("server_cpu_us_per_delivery") is not None
            else ""
        ),
        target if not label else "",
        _met(ok) if not label else "",
        f"{s['rounds']} round(s); {s.get('events_committed')} of {s.get('events_scheduled')} scheduled "
        f"events posted (the rest fell behind schedule); {s['deliveries']:,} deliveries, "
        f"~{per_event} of the 200 members receive each event; "
        + (
            f"{r['subscriber_processes']} subscriber processes {_fmt(s['clients_cpu_pct_max'], '%')} CPU together, "
            if r.get("subscriber_processes", 1) > 1
            else f"subscriber process {_fmt(s['clients_cpu_pct_max'], '%')} CPU, "
        )
        + f"db {_fmt(s['db_cpu_pct_max'], '%')} CPU; connecting took {_fmt(r['connect'].get('seconds'), ' s')}",
    )


if __name__ == "__main__":
    main()
