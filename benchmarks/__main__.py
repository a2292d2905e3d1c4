"""``python -m benchmarks [--quick | --smoke] [--only NAME ...]``: run, print, write the table."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("middleware", "checkout", "throughput", "backlog", "sync", "reconcile", "history")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="django-pjpixel benchmarks, each against a baseline measured in the same run.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="fewer rounds, a fifth of the events and orders"
    )
    size.add_argument(
        "--smoke", action="store_true", help="a tiny size, only to see that everything runs"
    )
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "artifacts" / "bench.md", help="the markdown table"
    )
    parser.add_argument(
        "--sqlite", action="store_true", help="use a SQLite file even where PostgreSQL answers"
    )
    parser.add_argument("--keep-db", action="store_true", help="leave the database behind")
    return parser.parse_args(argv)


def configure(args: argparse.Namespace) -> None:
    """The environment ``benchmarks.settings`` (and the drain subprocess) read."""
    from benchmarks import services

    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    suffix = f"_smoke_{os.getpid()}" if args.smoke else ""
    os.environ.setdefault("PJPIXEL_BENCH_DB_NAME", f"pjpixel_bench{suffix}")
    os.environ.setdefault(
        "PJPIXEL_BENCH_SQLITE", str(args.out.resolve().parent / f"bench{suffix}.sqlite3")
    )
    os.environ.setdefault("PJPIXEL_BENCH_QUEUE", f"pjpixel-bench{suffix.replace('_', '-')}")
    if args.sqlite:
        os.environ["PJPIXEL_BENCH_DB"] = "sqlite"
    broker = os.environ.get("PJPIXEL_BENCH_BROKER_URL", services.REDIS_URL)
    if broker.startswith("redis") and not services.redis_reachable(broker):
        broker = "memory://"
    os.environ["PJPIXEL_BENCH_BROKER_URL"] = broker


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure(args)

    import django
    from django.conf import settings

    from benchmarks import harness, services

    sizes = harness.SMOKE if args.smoke else harness.QUICK if args.quick else harness.FULL
    chosen = args.only or list(BENCHMARKS)
    db = dict(settings.DATABASES["default"])
    services.create_database(db)
    started = time.perf_counter()
    report = harness.Report()
    failed: list[str] = []
    try:
        django.setup()
        from django.core.management import call_command
        from django.db import connections

        import tests.celery_app  # noqa: F401  (the shared tasks bind to this app)

        call_command("migrate", run_syncdb=True, verbosity=0)
        about = harness.machine()
        about["database"] = services.describe_database(db)
        about["broker"] = services.describe_broker(settings.CELERY_BROKER_URL)
        print("django-pjpixel benchmarks,", sizes.name, "size")
        for key, value in about.items():
            print(f"  {key}: {value}")
        print(flush=True)
        for name in chosen:
            try:
                run_one(name)(report, sizes)
            except Exception as err:  # the other benchmarks and the table still come
                traceback.print_exc()
                failed.append(name)
                message = f"{type(err).__name__}: {err}".splitlines()[0][:160]
                report.add(harness.Row(name, f"did not run: {message}", "—", "—", "—", False))
            print(flush=True)
        connections.close_all()
        about["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    finally:
        if not args.keep_db:
            services.drop_database(db)
    table = harness.render(report, about, sizes=sizes, seconds=time.perf_counter() - started)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table, encoding="utf-8")
    print(f"written to {args.out}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def run_one(name: str) -> Callable[..., None]:
    if name == "middleware":
        from benchmarks import bench_middleware

        return bench_middleware.run
    if name == "checkout":
        from benchmarks import bench_checkout

        return bench_checkout.run
    if name == "throughput":
        from benchmarks import bench_delivery

        return bench_delivery.run
    if name == "sync":
        from benchmarks import bench_sync

        return bench_sync.run
    if name == "history":
        from benchmarks import bench_history

        return bench_history.run
    if name == "reconcile":
        from benchmarks import bench_reconcile

        return bench_reconcile.run
    from benchmarks import bench_backlog

    return bench_backlog.run


if __name__ == "__main__":
    sys.exit(main())
