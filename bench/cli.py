"""``progbench``: plan and run suites, build the report, list models and methods.

A user's mistake (unknown method, bad YAML, missing data, a full or read-only store, ...) ends in one line on stderr
and exit status 2; a run that fails (e.g. a NaN loss, a method's own exception) in one line and status 1; anything
else in one line and status 3 (``PROGBENCH_DEBUG=1`` shows its traceback). Nothing in the store or the report is lost
either way, and no temporary file is left.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default=os.environ.get("PROGBENCH_RESULTS", "results"),
                   help="results store folder (default: ./results or $PROGBENCH_RESULTS)")


def _placement(p: argparse.ArgumentParser) -> None:
    """Settings that enter every run's spec (they move its numbers); over the suite's executor section."""
    p.add_argument("--threads-per-worker", "--threads", dest="threads_per_worker", type=int, default=None,
                   help="CPU threads of each process of a run; part of the run's spec (default: the suite's "
                        "executor.threads_per_worker, else 2, the setting of the committed runs)")
    p.add_argument("--nproc-per-run", type=int, default=None,
                   help="data-parallel processes per run (gloo on CPU, NCCL on CUDA); part of the spec (default 1)")


def _strict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true",
                   help="refuse cached runs made with other source code of their method at the same version "
                        "(default: warn)")


def _trains_locally(p: argparse.ArgumentParser) -> None:
    """The options of a command that trains what it needs with local workers (reproduce, compare)."""
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--data-root", default=None, help="folder of hub-layout datasets (default: $PROGBENCH_DATA)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.add_argument("--workers", type=int, default=None, help="local workers (default: fill the machine)")
    _strict(p)
    _placement(p)
    _common(p)


def _executor(p: argparse.ArgumentParser) -> None:
    _placement(p)
    p.add_argument("--executor", choices=["local", "slurm"], default=None,
                   help="local: worker processes on this machine (default); slurm: one job per run via submitit")
    p.add_argument("--workers", type=int, default=None,
                   help="local: runs trained at once (default: cores / (threads x processes per run))")
    g = p.add_argument_group("slurm (or the executor.slurm section of the suite or config file)")
    g.add_argument("--partition")
    g.add_argument("--time", help="time limit per job: minutes or [D-]HH:MM[:SS] (default 24 h)")
    g.add_argument("--cpus-per-task", type=int, help="default: the run's threads")
    g.add_argument("--gpus-per-task", type=int, help="default: 1 with --device cuda, else 0")
    g.add_argument("--mem-gb", type=int)
    g.add_argument("--account")
    g.add_argument("--qos")
    g.add_argument("--sbatch", action="append", metavar="KEY=VALUE", help="any other sbatch option (repeatable)")
    g.add_argument("--wait", action="store_true", help="slurm: wait until every submitted job has ended")


def _executor_settings(args) -> dict:
    """The command line's executor settings (None: not given)."""
    cli = {"name": getattr(args, "executor", None), "workers": getattr(args, "workers", None),
           "threads_per_worker": args.threads_per_worker, "nproc_per_run": args.nproc_per_run}
    slurm = {k: getattr(args, k, None) for k in ("partition", "time", "cpus_per_task", "gpus_per_task", "mem_gb",
                                                 "account", "qos")}
    extra = getattr(args, "sbatch", None) or []
    if extra:
        from .errors import UserError
        bad = [e for e in extra if "=" not in e]
        if bad:
            raise UserError(f"--sbatch {bad[0]!r}: give KEY=VALUE, e.g. --sbatch exclusive=true")
        slurm["sbatch"] = dict(e.split("=", 1) for e in extra)
    slurm = {k: v for k, v in slurm.items() if v is not None}
    if slurm:
        cli["slurm"] = slurm
    return {k: v for k, v in cli.items() if v is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="progbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", help="list a suite's runs, cached or missing, with estimated cost")
    p.add_argument("suite", help="built-in suite name (smoke, cpu, paper) or path to a suite .yaml")
    p.add_argument("--only", help="filter: key=value[,key=value], keys method (teacher: the teacher runs), family, "
                                  "seed, id (a prefix)")
    p.add_argument("--models", action="store_true",
                   help="instead of the runs: every model the suite builds (teachers, students, method-internal "
                        "models) with params and FLOPs beside the published numbers")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="estimate training time for this device: cpu (the store's measured rate; default) or cuda "
                        "(GPU-hours per run and family at --gpu-tflops, and the data each family needs)")
    _placement(p)
    p.add_argument("--workers", type=int, default=None,
                   help="local workers the wall-clock estimate assumes (default: as `progbench run` would use)")
    p.add_argument("--gpu-tflops", type=float, default=None,
                   help="sustained training rate assumed with --device cuda, TFLOP/s (default: H100 SXM dense bf16 "
                        "peak 989 x 0.35 assumed utilisation)")
    _strict(p)
    _common(p)

    p = sub.add_parser("run", help="run a suite's missing runs, teachers first; safe to stop and restart")
    p.add_argument("suite")
    p.add_argument("--only", help="as for plan")
    p.add_argument("--until", type=deadline_arg, default=None, metavar="HH:MM|+MIN",
                   help="local: start no run whose estimated training (as plan estimates it) would end after this "
                        "time (HH:MM local, the nearest: at most 12 h ahead, and one just passed has passed) or "
                        "this many minutes from now (+MIN), so a machine lent for a while is not left with runs cut "
                        "off half-way; runs not started are listed")
    p.add_argument("--leave-held", action="store_true",
                   help="local: leave a run another runner holds to it and end when only such runs are left, instead "
                        "of waiting for them; for runners walking the same list one part after another (e.g. one "
                        "per core, --only family=A then family=B), so none idles on a run another is training")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--data-root", default=None, help="folder of hub-layout datasets (default: $PROGBENCH_DATA)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    _strict(p)
    _executor(p)
    _common(p)

    p = sub.add_parser("status", help="per run of a suite: done, running (where, epoch), queued, failed (log), "
                                      "partial or missing")
    p.add_argument("suite")
    p.add_argument("--only", help="as for plan")
    _placement(p)
    _common(p)

    p = sub.add_parser("latency", help="time every operating point of each selected cell (family) in this one "
                                       "process, interleaved, on a quiet machine: the latency the report scores")
    p.add_argument("suite")
    p.add_argument("--only", help="as for plan (e.g. family=vgg_c10); every finished run of each family it selects")
    p.add_argument("--rounds", type=int, default=5, help="times each point is timed, once per round (default 5)")
    p.add_argument("--timing-threads", type=int, default=1, help="intra-op threads while timing (default 1)")
    p.add_argument("--min-run-time", type=float, default=0.2,
                   help="seconds each point is run for in each round (torch.utils.benchmark; default 0.2)")
    p.add_argument("--load-trials", type=int, default=7,
                   help="trials of each progressive loading timeline measured again (warm and cold; default 7)")
    p.add_argument("--busy-ok", action="store_true",
                   help="time even when the load average says the machine is busy (the pass is marked busy)")
    _placement(p)
    _common(p)

    p = sub.add_parser("import", help="copy in the finished runs of another store (trained on a cluster or another "
                                      "machine) that this one lacks, each verified there and here; never overwrites")
    p.add_argument("source", help="the other store's folder (the one holding runs/)")
    _common(p)

    p = sub.add_parser("report", help="rebuild the tables and figures under reports/ from the store")
    p.add_argument("--out", default=None, help="output folder (default: reports, the report of ./results; another "
                                               "store's report goes there only with --force)")
    p.add_argument("--readme", help="also rewrite this file's headline-results block (e.g. README.md)")
    p.add_argument("--force", action="store_true", help="write another store's report into the default reports/")
    _common(p)

    p = sub.add_parser("reproduce", help="the main job: run what the store lacks of a suite, rebuild the report and "
                                         "say which files changed; --fresh reruns selected runs and compares")
    p.add_argument("--suite", default="cpu", help="suite to reproduce (default: cpu)")
    p.add_argument("--fresh", metavar="RUN-FILTER",
                   help="train the runs this filter selects (as --only) again from nothing into a scratch store and "
                        "print how far each metric moved from the committed record; teachers the filter selects are "
                        "retrained too, teachers the selected runs only need are copied from the store")
    p.add_argument("--scratch", help="scratch store for --fresh (default: a new temporary folder, kept); an "
                                     "interrupted --fresh resumes when given the same scratch store and filter")
    p.add_argument("--out", default=None, help="report folder (default: reports, the report of ./results; another "
                                               "store's report goes there only with --force)")
    p.add_argument("--readme", help="also rewrite this file's headline-results block (e.g. README.md)")
    p.add_argument("--force", action="store_true", help="write another store's report into the default reports/")
    _trains_locally(p)

    p = sub.add_parser("models", help="params and FLOPs of every architecture preset")
    p.add_argument("--scale", choices=["paper", "cpu", "tiny"], default=None, help="only presets of this scale")

    sub.add_parser("methods", help="the available methods and their config fields")

    p = sub.add_parser("calibrate", help="write the rates table plan's estimates fall back on (seconds per training "
                                         "FLOP and per image, per machine kind, precision and threads), fitted to a "
                                         "store's finished runs")
    p.add_argument("--out", default=None, help="the table to write (default: the rates.csv shipped in the package)")
    _common(p)

    p = sub.add_parser("compare", help="train a method where a suite trains kd (same tasks, teachers, budgets) and "
                                       "compare it with every baseline on the same teacher run, architecture and "
                                       "data: matched cost, areas under the anytime curves, ablations apart, loading")
    p.add_argument("name", help="the method: a registered name (built-in or entry point progbench.methods), or the "
                                "name of the class --method points to")
    p.add_argument("--suite", required=True, help="built-in suite name (smoke, cpu, paper) or path to a suite .yaml")
    p.add_argument("--only", help="filter the method's runs: key=value[,key=value], keys method, family, seed, id; "
                                  "family= also picks a family where the suite runs no kd")
    p.add_argument("--method", help="path/to/file.py:ClassName defining the method, if it is not registered")
    p.add_argument("--config", help="the method's config as a JSON object, e.g. '{\"T\": 2}' (default: its defaults)")
    p.add_argument("--out", default=None, help="folder of the tables and figures (default: reports/compare/NAME)")
    _trains_locally(p)
    return parser


def cmd_plan(args) -> int:
    from . import scale
    from .errors import UserError
    from .runner import format_plan, plan
    from .store import Store
    if args.gpu_tflops is not None and (args.device != "cuda" or args.gpu_tflops <= 0):
        raise UserError("--gpu-tflops is a positive rate for the GPU estimate; give it with --device cuda")
    suite = _suite(args)
    if args.models:
        print(scale.format_models(suite, scale.compare(scale.suite_models(suite, args.only),
                                                       scale.published_models())))
    elif args.device == "cuda":
        tflops = args.gpu_tflops or scale.GPU_PEAK_TFLOPS * scale.GPU_UTILISATION
        rows = scale.gpu_plan(suite, Store(args.results), args.only, tflops)
        print(scale.format_gpu_plan(suite, rows, tflops, given=args.gpu_tflops is not None))
    else:
        from .executors.local import default_workers
        from .preflight import guard
        runs = suite.select(args.only)
        workers = args.workers or suite.executor.workers or default_workers(runs)
        rows = plan(suite, Store(args.results), args.only)
        guard(runs, {r["run"]: r["record"] for r in rows if r["record"]}, args.strict)
        print(format_plan(suite, rows, workers))
    return 0


def _suite(args):
    """The suite the command names, with the command line's executor settings; declared datasets are fingerprinted
    under --data-root where the command has it."""
    from .suite import load_suite
    return load_suite(args.suite, _executor_settings(args), getattr(args, "data_root", None))


def _runtime(args, store=None):
    from .runner import Runtime, parse_device
    from .store import Store
    if args.data_root:
        os.environ["PROGBENCH_DATA"] = args.data_root
    if args.no_progress:
        quiet()
    return Runtime(store or Store(args.results), parse_device(args.device), args.data_root,
                   progress=not args.no_progress)


def quiet() -> None:
    """No progress bars from anything: ours (``progbench.data.progress_bars``) and the Hugging Face libraries', here and
    in every process started from here (workers inherit the environment)."""
    os.environ["PROGBENCH_NO_PROGRESS"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "datasets" in sys.modules:  # imported already: it read the environment then
        sys.modules["datasets"].disable_progress_bars()
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()


def deadline_arg(text: str) -> float:
    """``--until``: HH:MM (local time, the nearest: at most 12 h ahead or ago) or +MINUTES from now, as a
    time.time()."""
    import datetime
    try:
        if text.startswith("+"):
            return time.time() + float(text[1:]) * 60
        at = datetime.datetime.strptime(text, "%H:%M").time()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HH:MM or +MINUTES (e.g. 17:30 or +150)") from None
    now = datetime.datetime.now()
    when = datetime.datetime.combine(now.date(), at)
    # The nearest such time, within 12 h either way: one that passed minutes ago has passed (a driver that hands the
    # same deadline to phase after phase starts nothing more), not tomorrow's; for longer than 12 h ahead, +MIN.
    half_day = datetime.timedelta(hours=12)
    if when - now > half_day:
        when -= datetime.timedelta(days=1)
    elif now - when > half_day:
        when += datetime.timedelta(days=1)
    return when.timestamp()


def _finish(outcome, what: str, resumes: str = "`progbench run` resumes them") -> int:
    """The one summary line of a local training, failures one line each on stderr; the exit status."""
    print(f"{what}: {len(outcome.trained)} run(s) trained in {outcome.minutes:.1f} min, {len(outcome.cached)} "
          f"cached" + (f", {len(outcome.failed)} failed" if outcome.failed else "")
          + (f", {len(outcome.skipped)} skipped (teacher failed)" if outcome.skipped else "")
          + (f", {len(outcome.deferred)} not started (they would end after --until)" if outcome.deferred else "")
          + (f", {len(outcome.left)} left to the runners holding them" if outcome.left else ""))
    for message in outcome.failed.values():
        print(f"progbench: run failed: {message}", file=sys.stderr)
    if outcome.interrupted:
        print(f"progbench: interrupted; finished epochs are checkpointed, {resumes}", file=sys.stderr)
        return 130
    return 1 if outcome.failed else 0


def cmd_run(args) -> int:
    from .executors import train_missing
    suite = _suite(args)
    rt = _runtime(args)
    if suite.executor.name == "slurm":
        from .executors import slurm
        from .preflight import guard
        from .runner import plan
        runs = suite.select(args.only)
        rows = plan(suite, rt.store, args.only)  # methods built on the meta device before anything is submitted
        guard(runs, {r["run"]: r["record"] for r in rows if r["record"]}, args.strict)
        jobs = slurm.submit(runs, rt.store, suite.executor, args.device, args.data_root)
        print(f"suite {suite.name}: {len(jobs)} run(s) queued or running on Slurm, "
              f"{sum(rt.store.status(r.run_id) == 'done' for r in runs)} done; `progbench status {args.suite}` "
              f"follows them")
        if args.wait and jobs:
            final = slurm.wait(jobs, rt.store)
            bad = {rid: s for rid, s in final.items() if s != "done"}
            for rid, state in bad.items():
                print(f"progbench: run {state}: {rid} (`progbench status {args.suite}` shows its log)",
                      file=sys.stderr)
            return 1 if bad else 0
        return 0
    return _finish(train_missing(suite, rt, args.only, strict=args.strict, deadline=args.until,
                                 leave_held=args.leave_held), f"suite {suite.name}")


def cmd_status(args) -> int:
    from .status import format_status, suite_status
    from .store import Store
    suite = _suite(args)
    print(format_status(suite, suite_status(suite, Store(args.results), args.only)))
    return 0


def cmd_latency(args) -> int:
    from . import latency
    from .env import environment
    from .errors import UserError
    from .store import Store
    if args.rounds < 1 or args.timing_threads < 1 or args.load_trials < 1 or not args.min_run_time > 0:
        raise UserError("--rounds, --timing-threads and --load-trials must be at least 1 and --min-run-time above 0")
    suite = _suite(args)
    store = Store(args.results)
    families: dict[str, list] = {}
    for run in suite.select(args.only):
        check = store.check(run.run_id)
        if check.status == "done":
            families.setdefault(run.family, []).append((check.record, run))
    if not families:
        raise UserError(f"no finished run of suite {suite.name}" + (f" matches --only {args.only}" if args.only else "")
                        + f"; `progbench status {suite.name}` lists them")
    before = latency.load_average()
    if latency.busy(before) and not args.busy_ok:
        raise UserError(f"the machine is busy (load average {before[0]} over 1 min, {os.cpu_count()} cores): "
                        f"latencies timed now compare with nothing; stop other jobs, wait a minute and rerun (or "
                        f"pass --busy-ok, and the pass is marked busy)")
    import torch
    env = environment(torch.device("cpu"))
    for family, finished in families.items():
        runs, untimed = [], {}
        for record, run in finished:
            models = latency.family(record, run)
            if isinstance(models, str):
                untimed[record.run_id] = models
                print(f"latency {family}: {record.run_id} left out: {models}", flush=True)
            else:
                runs.append((record, models))
        points = sum(len(r.metrics["points"]) for r, _ in runs)
        print(f"latency {family}: {points} points of {len(runs)} run(s), {args.rounds} rounds", flush=True)
        start = latency.load_average()
        rows = latency.time_points(runs, rounds=args.rounds, min_run_time=args.min_run_time,
                                   threads=args.timing_threads,
                                   on_round=lambda r, n: print(f"  round {r}/{n}", flush=True))
        timelines, not_loaded = latency.time_loading(
            runs, args.load_trials, threads=args.timing_threads,
            on_run=lambda rid: print(f"  loading timeline of {rid}", flush=True))
        for rid, why in not_loaded.items():
            print(f"latency {family}: {rid}: loading timeline not measured again: {why}", flush=True)
        end = latency.load_average()
        path = latency.write_pass(store.root, family, {
            "family": family, "suite": suite.name, "rounds": args.rounds,
            "min_run_time_s": args.min_run_time, "threads": args.timing_threads,
            "load_average_before": start, "load_average_after": end,
            "busy": latency.busy(start),  # after the pass, the load includes the pass's own thread
            "weights": latency.STAND_INS, "env": env, "points": rows,
            **({"loading": timelines} if timelines else {}),
            **({"left_out": untimed} if untimed else {}), **({"loading_left_out": not_loaded} if not_loaded else {})})
        print(f"latency {family}: written to {path} (load average {start[0]} before, {end[0]} after)")
    return 0


def cmd_report(args) -> int:
    from . import publish
    t0 = time.perf_counter()
    out = publish.check_out(args.results, args.out, args.force)
    written = publish.build(args.results, out, args.readme)
    print(f"report: {len(written)} files written to {out}/ in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_reproduce(args) -> int:
    from . import reproduce
    from .errors import UserError
    from .executors import train_missing
    from .store import Store
    from .suite import matches, parse_only
    suite, committed = _suite(args), Store(args.results)
    rt = _runtime(args, committed)
    if not args.fresh:
        from . import publish
        t0 = time.perf_counter()
        out = publish.check_out(args.results, args.out, args.force)
        outcome = train_missing(suite, rt, strict=args.strict)
        if outcome.failed or outcome.interrupted:
            return _finish(outcome, f"reproduce {suite.name}")
        ran = outcome.trained
        before = reproduce.file_digests(out, *([Path(args.readme)] if args.readme else []))
        written = publish.build(args.results, out, args.readme)
        changed, same = reproduce.report_changes(before, written)
        shown = 10  # the summary stays a few lines; `git status` lists every changed file
        print(f"reproduce {suite.name}: {len(ran)} run(s) trained, {len(outcome.cached)} cached, "
              f"{len(outcome.failed)} failed; {len(written)} report files rebuilt in {time.perf_counter() - t0:.1f} s: "
              f"{len(same)} byte-identical to before, {len(changed)} changed or new"
              + "".join(f"\n    changed: {p}" for p in changed[:shown])
              + (f"\n    ... and {len(changed) - shown} more" if len(changed) > shown else ""))
        return 0
    selected, wanted = suite.select(args.fresh), parse_only(args.fresh)
    # a teacher the filter selects is retrained; one the selected runs only need is copied from the store
    copied = sorted({r.run_id for r in selected if r.is_teacher and not matches(r, wanted)})
    scratch, resumed = reproduce.scratch_store(args.scratch, committed, suite.name, args.fresh,
                                               [r.run_id for r in selected])
    reproduce.seed_scratch_store(committed, scratch, copied)
    rt = _runtime(args, scratch)
    print(f"fresh: {'resuming' if resumed else 'retraining'} {len(selected) - len(copied)} run(s) into "
          f"{scratch.root}" + (f" (teachers copied from {committed.root}: {', '.join(copied)})" if copied else ""))
    resumes = f"the same command with --scratch {scratch.root} resumes them"
    try:
        outcome = train_missing(suite, rt, args.fresh)
    except KeyboardInterrupt:
        print(f"progbench: interrupted; finished epochs are checkpointed, {resumes}", file=sys.stderr)
        return 130
    if outcome.failed or outcome.interrupted:
        return _finish(outcome, "fresh", resumes)
    retrained = [r.run_id for r in selected if r.run_id not in copied]
    missing_fresh = [rid for rid in retrained if scratch.status(rid) != "done"]
    if missing_fresh:  # cannot happen after a clean finish: say so rather than compare
        raise UserError(f"--scratch {scratch.root}: {len(missing_fresh)} run(s) did not finish there "
                        f"({missing_fresh[0]}); run the same command again to resume them")
    moved, missing = [], []
    for run in selected:
        if run.run_id in copied:
            continue
        old = committed.get(run.run_id)
        if old is None:
            missing.append(run.run_id)
            continue
        for line in reproduce.environment_differences(old, rt.env):
            print(f"note: {run.run_id} was recorded with a different environment ({line}); exact agreement is only "
                  f"expected on the same CPU, wheels and thread count")
        moved += reproduce.compare_records(old, scratch.get(run.run_id))
    print(reproduce.format_comparison(moved))
    for rid in missing:
        print(f"{rid}: not in the committed store {committed.root}; nothing to compare with")
    off = {m.run_id for m in moved if m.exact and m.delta != 0}
    compared = len({m.run_id for m in moved})
    print(f"fresh: {compared - len(off)} of {compared} run(s) reproduced their committed metrics exactly"
          + (f"; {len(missing)} had nothing to compare with" if missing else ""))
    return 1 if off or missing or not compared else 0


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


def cmd_calibrate(args) -> int:
    from importlib import resources

    from .errors import UserError
    from .rates import TABLE, write_table
    from .store import Store
    records = Store(args.results).records()
    if not records:
        raise UserError(f"{args.results} holds no finished run to calibrate from; give --results a trained store")
    out = write_table(records, Path(args.out) if args.out else Path(str(resources.files("progbench") / TABLE)))
    print(f"calibrate: rates of {len(records)} finished run(s) written to {out}")
    return 0


def cmd_import(args) -> int:
    from .store import Store
    found = Store(args.results).take_in(Store(args.source))
    why = {"refused": f"{args.results} already holds another record of each, or an unfinished or corrupt run (left "
                      f"as it is; move it aside to take this one)",
           "unfinished": "not finished there (finish them there first)",
           "corrupt": "corrupt there (their files do not match record.json)"}
    print(f"import: {len(found['copied'])} run(s) copied from {args.source} into {args.results}, "
          f"{len(found['same'])} already here")
    for outcome, reason in why.items():
        if found[outcome]:
            print(f"import: {len(found[outcome])} not taken, {reason}: {' '.join(found[outcome])}", file=sys.stderr)
    return 1 if found["refused"] or found["corrupt"] else 0


def cmd_methods(args) -> int:
    import dataclasses

    from .protocol import available_methods, get_method
    for name, ref in sorted(available_methods().items()):
        cls = get_method(name)
        fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls.Config))
        print(f"{name:10s} v{cls.version}  {ref:28s} {fields}")
    return 0


def cmd_compare(args) -> int:
    import json

    from progbench.reports.compare import build_comparison, plan_comparison

    from .errors import UserError
    from .executors import train_missing
    from .suite import Suite
    try:
        config = json.loads(args.config) if args.config else {}
    except json.JSONDecodeError as exc:
        raise UserError(f"--config is not valid JSON ({exc}); give an object, e.g. '{{\"T\": 2}}'") from None
    if not isinstance(config, dict):
        raise UserError(f"--config must be a JSON object of config fields, e.g. '{{\"T\": 2}}', not {args.config!r}")
    suite = _suite(args)
    comparison = plan_comparison(suite, args.name, args.method, config, args.only)
    rt = _runtime(args)
    outcome = train_missing(Suite(suite.name, suite.path, comparison.teachers + comparison.runs,
                                  executor=suite.executor), rt, strict=args.strict)
    status = _finish(outcome, f"compare {comparison.method}")
    if status:
        return status
    out = args.out or os.path.join("reports", "compare", comparison.method)
    summary, written, _notes = build_comparison(rt.store, comparison, out)  # the notes are in the summary
    print(summary, end="")  # at most 120 columns; the full tables are in the files
    print(f"compare {comparison.method}: {len(written)} files written to {out}/")
    return 0


COMMANDS = {"plan": cmd_plan, "run": cmd_run, "status": cmd_status, "latency": cmd_latency, "report": cmd_report,
            "reproduce": cmd_reproduce,
            "models": cmd_models,
            "methods": cmd_methods, "calibrate": cmd_calibrate, "compare": cmd_compare, "import": cmd_import}


def unbuffered() -> None:
    """Lines reach a redirected log as they are written, here and in every process started from here."""
    os.environ["PYTHONUNBUFFERED"] = "1"
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)


def main(argv: list[str] | None = None) -> int:
    from .errors import RunFailed, UserError, storage_error  # light: --help and argument errors never import torch

    args = build_parser().parse_args(argv)
    unbuffered()
    import signal
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # started in the background by a script (`progbench run ... &`), which ignores SIGINT for it: an explicit
        # `kill -INT` still means "stop at the next epoch end", as Ctrl-C does
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"progbench: error: {_line(exc)}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"progbench: run failed: {_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("progbench: interrupted; the last finished epoch is checkpointed, `progbench run` resumes it",
              file=sys.stderr)
        return 130
    except OSError as exc:  # the filesystem outside the places that name it themselves
        print(f"progbench: error: {_line(storage_error(exc, doing='use'))}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("PROGBENCH_DEBUG"):
            raise
        import traceback
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(f"progbench: internal error: {type(exc).__name__}: {_line(exc)} (at {Path(where.filename).name}:"
              f"{where.lineno}); PROGBENCH_DEBUG=1 shows the traceback; please report it", file=sys.stderr)
        return 3


def _line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
