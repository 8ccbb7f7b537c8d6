"""Runs the benchmarks and writes ``bench/results/latest.json`` and ``latest.md``.

    python -m bench.run [--scale small|full|FRACTION] [--only page,inbound,fanout,grab,cross]

Seeds a fresh embedded database (``bench.seed``) in a temporary directory,
then runs each benchmark against its own ``imbrace serve`` process(es) on it:
page, grab, inbound, fanout, cross (in that order, whatever ``--only`` lists);
delivery runs last on a fresh data directory of its own (``bench.delivery``; with
``--only delivery`` nothing is seeded); widget (``bench.widget``, 2,000 web widget
visitors) likewise, but only when ``--only`` names it.
Every benchmark stops by itself; everything listens on 127.0.0.1 only.
``--profile`` records py-spy flame graphs of the servers during the first
measured window of each benchmark, and writes ``profile.json``/``profile.md``
instead of ``latest.*`` (profiling perturbs the figures).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import common
from bench.common import RESULTS, log, machine, write_json
from bench.report import markdown
from bench.seed import scale_value, seed_fresh

ORDER = ["page", "grab", "inbound", "fanout", "cross", "delivery", "widget"]
OPT_IN = {"widget"}  # only with --only: not part of the default suite (several minutes of set-up)
NEEDS_NO_SEED = {"delivery", "widget"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", default="small", help="small (1/50, the default), full (the issue's data set), or a fraction of full"
    )
    parser.add_argument(
        "--only",
        default=",".join(b for b in ORDER if b not in OPT_IN),
        help="comma-separated subset of " + ",".join(ORDER) + " (widget runs only when named)",
    )
    parser.add_argument("--runs", type=int, default=3, help="repeated runs per benchmark (default 3)")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="inbound burst seconds per run (default 60 at full scale, 20 otherwise)",
    )
    parser.add_argument("--page-duration", type=float, default=10, help="page window seconds (default 10)")
    parser.add_argument("--grab-rounds", type=int, default=50)
    parser.add_argument("--fanout-sizes", default="1000", help="subscriber counts, e.g. 1000,5000,10000")
    parser.add_argument(
        "--fanout-unshared-sizes",
        default="1000",
        help="subscriber counts run again with shared execution off, to show its effect (empty: skip)",
    )
    parser.add_argument(
        "--subscriber-processes",
        type=int,
        default=1,
        help="fan-out subscriber processes sharing the sockets (default 1; 2 keeps the load generator "
        "from competing with itself for one core)",
    )
    parser.add_argument("--fanout-rate", type=float, default=50, help="driver events/s (default 50)")
    parser.add_argument("--fanout-drive", type=float, default=15, help="driver seconds per round (default 15)")
    from bench import delivery

    delivery.add_arguments(parser, "delivery-")
    from bench import widget

    widget.add_arguments(parser, "widget-")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="reuse a data set seeded by `python -m bench.seed` (not reseeded, left in place)",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the seeded temporary directory")
    parser.add_argument("--profile", action="store_true", help="py-spy flame graphs; writes profile.* not latest.*")
    parser.add_argument("--profile-seconds", type=float, default=10)
    parser.add_argument("--profile-dir", type=Path, default=RESULTS, help="where the flame graphs go")
    parser.add_argument(
        "--output", default=None, help="name of the result files under bench/results (default latest, or profile)"
    )
    args = parser.parse_args(argv)

    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(ORDER)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    scale = scale_value(args.scale)
    label = args.scale if args.scale in ("small", "full") else f"{scale:g}"
    inbound_s = args.duration or (60 if scale >= 1 else 20)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
        common.PROFILE = {"seconds": args.profile_seconds, "dir": args.profile_dir}
    common.raise_nofile()

    started = time.monotonic()
    command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict = {
        "command": command.strip(),
        "scale": scale,
        "scale_label": label,
        "machine": machine(),
        "thresholds_env": common.THRESHOLD_ENV,
        "benchmarks": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="imbrace-bench-"))
    # the in-process apps (command counts) log like the server: to a file, not the console
    logging.basicConfig(
        filename=str(workdir / "in-process.log"),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    data_dir = args.data_dir or workdir / "data"
    log(
        f"bench: scale {label + f' ({scale:g})' if args.data_dir is None else 'of ' + str(args.data_dir)}, "
        f"work dir {workdir}, running {', '.join(b for b in ORDER if b in only)}"
    )
    try:
        if set(only) <= NEEDS_NO_SEED:  # needs no seeded data set
            manifest = None
        elif args.data_dir is None:
            log("bench: seeding")
            manifest = seed_fresh(data_dir, scale)
        else:
            import json

            manifest = json.loads((data_dir / "manifest.json").read_text())
        if manifest is not None:
            results["dataset"] = {k: manifest[k] for k in ("sizes", "status_mix", "timings", "scale")}
            if args.data_dir is not None:  # the data set decides the scale
                results["scale"] = scale = manifest["scale"]
                results["scale_label"] = label = {1.0: "full", 0.02: "small"}.get(scale, f"{scale:g}")
            log(f"bench: data set {manifest['sizes']} (seeded in {manifest['timings']['total_s']} s)")
        output = args.output or ("profile" if args.profile else "latest")
        results["output"] = output
        for name in ORDER:
            if name not in only:
                continue
            log(f"bench: --- {name} ---")
            t0 = time.monotonic()
            try:
                results["benchmarks"][name] = _run_one(name, manifest, workdir, data_dir, args, inbound_s)
            except Exception as e:  # noqa: BLE001 - one failure must not lose the others
                traceback.print_exc()
                results["benchmarks"][name] = {"error": f"{type(e).__name__}: {e}"}
            results["benchmarks"][name]["wall_s"] = round(time.monotonic() - t0, 1)
            results["wall_s"] = round(time.monotonic() - started, 1)
            write_json(RESULTS / f"{output}.json", results)  # after each benchmark: partial results survive
            (RESULTS / f"{output}.md").write_text(markdown(results))
        results["wall_s"] = round(time.monotonic() - started, 1)
        write_json(RESULTS / f"{output}.json", results)
        (RESULTS / f"{output}.md").write_text(markdown(results))
        log(f"bench: done in {results['wall_s']} s -> {RESULTS / (output + '.md')}")
        print(markdown(results))
    finally:
        if args.keep_data or args.data_dir is not None:
            log(f"bench: work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _run_one(name: str, manifest: dict, workdir: Path, data_dir: Path, args, inbound_s: float) -> dict:
    if name == "page":
        from bench import page

        return page.run(manifest, workdir, data_dir, args.runs, args.page_duration)
    if name == "grab":
        from bench import grab

        return grab.run(manifest, workdir, data_dir, args.grab_rounds)
    if name == "inbound":
        from bench import inbound

        return inbound.run(manifest, workdir, data_dir, args.runs, inbound_s)
    if name == "fanout":
        from bench import fanout

        sizes = [int(x) for x in args.fanout_sizes.split(",") if x.strip()]
        unshared = [int(x) for x in args.fanout_unshared_sizes.split(",") if x.strip()]
        return fanout.run_fanout(
            manifest,
            workdir,
            data_dir,
            sizes,
            args.runs,
            args.fanout_rate,
            args.fanout_drive,
            unshared,
            args.subscriber_processes,
        )
    if name == "cross":
        from bench import fanout

        return fanout.run_cross(manifest, workdir, data_dir, args.runs)
    if name == "delivery":
        from bench import delivery

        return delivery.run(workdir, delivery.options(args, "delivery_"))
    if name == "widget":
        from bench import widget

        (workdir / "widget").mkdir(parents=True, exist_ok=True)
        return widget.run(workdir / "widget", widget.options(args, "widget_"))
    raise ValueError(name)


if __name__ == "__main__":
    sys.exit(main())
