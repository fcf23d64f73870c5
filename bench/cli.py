"""``progbench``: plan and run suites, build the report, list models and methods.

A user's mistake (unknown method, bad YAML, missing data, ...) ends in one line on stderr and exit status 2; a run
that fails (e.g. a NaN loss) in one line and status 1. Nothing in the store is lost either way.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default=os.environ.get("PROGBENCH_RESULTS", "results"),
                   help="results store folder (default: ./results or $PROGBENCH_RESULTS)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="progbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", help="list a suite's runs, cached or missing, with estimated cost")
    p.add_argument("suite", help="built-in suite name (smoke, cpu, paper) or path to a suite .yaml")
    p.add_argument("--only", help="filter: key=value[,key=value], keys method, family, seed, id")
    _common(p)

    p = sub.add_parser("run", help="run a suite's missing runs, teachers first; safe to stop and restart")
    p.add_argument("suite")
    p.add_argument("--only")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--data-root", default=None, help="folder of hub-layout datasets (default: $PROGBENCH_DATA)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    _common(p)

    p = sub.add_parser("report", help="rebuild the tables and figures under reports/ from the store")
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    _common(p)

    p = sub.add_parser("models", help="params and FLOPs of every architecture preset")
    p.add_argument("--scale", choices=["paper", "cpu", "tiny"], default=None, help="only presets of this scale")

    sub.add_parser("methods", help="the available methods and their config fields")
    return parser


def cmd_plan(args) -> int:
    from .runner import format_plan, plan
    from .store import Store
    from .suite import load_suite
    suite = load_suite(args.suite)
    print(format_plan(suite, plan(suite, Store(args.results), args.only)))
    return 0


def cmd_run(args) -> int:
    import torch

    from .runner import Runtime, parse_device, run_suite
    from .store import Store
    from .suite import load_suite
    if args.threads:
        torch.set_num_threads(args.threads)
    suite = load_suite(args.suite)
    if args.data_root:
        os.environ["PROGBENCH_DATA"] = args.data_root
    rt = Runtime(Store(args.results), parse_device(args.device), args.data_root, progress=not args.no_progress)
    t0 = time.perf_counter()
    ran = run_suite(suite, rt, args.only)
    print(f"suite {suite.name}: {len(ran)} run(s) trained in {(time.perf_counter() - t0) / 60:.1f} min; "
          f"the rest were cached")
    return 0


def cmd_report(args) -> int:
    from reports.generate import build_report
    t0 = time.perf_counter()
    written = build_report(args.results, args.out)
    print(f"report: {len(written)} files written to {args.out}/ in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_models(args) -> int:
    from .models import FAMILIES
    from .runner import fmt_count, forward_flops
    print(f"{'model':28s} {'params':>10s} {'FLOPs/img':>10s}  input")
    for family, presets in FAMILIES.items():
        for preset, cfg in presets.items():
            if args.scale and not preset.endswith(args.scale):
                continue
            import timm
            name = f"pb_{family}_{preset}"
            size = cfg.get("img_size", 32)
            model = timm.create_model(name)
            params = sum(p.numel() for p in model.parameters())
            print(f"{name:28s} {fmt_count(params):>10s} {fmt_count(forward_flops(name, 10, size)):>10s}  "
                  f"{size}px, 10 classes")
    return 0


def cmd_methods(args) -> int:
    import dataclasses

    from .protocol import available_methods, get_method
    for name, ref in sorted(available_methods().items()):
        cls = get_method(name)
        fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls.Config))
        print(f"{name:10s} v{cls.version}  {ref:28s} {fields}")
    return 0


COMMANDS = {"plan": cmd_plan, "run": cmd_run, "report": cmd_report, "models": cmd_models, "methods": cmd_methods}


def main(argv: list[str] | None = None) -> int:
    from .errors import UserError
    from .runner import RunFailed

    args = build_parser().parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines reach a redirected log as they happen
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"progbench: error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"progbench: run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("progbench: interrupted; the last finished epoch is checkpointed, `progbench run` resumes it",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
