"""Where the CPU of a request goes under load: the app server's, PostgreSQL's, per request.

    python -m bench.cpu_split --database-url postgresql+psycopg://…/bench_speed \\
        --articles 1000 "API 200" purchase webhook

Runs hello-world and the app under the bench's server command, drives each scenario with
wrk as `bench.run` does, and reads the CPU time (user and system) the gunicorn workers
and all PostgreSQL processes spent from /proc before and after, divided by the requests
wrk counted. It tells which side a scenario's cost is on, which bounds its ratio to
hello-world on a machine where both share the cores: at a given rate, PostgreSQL's
share is the rate times its ms per request, whatever the app does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.run import SECRET_KEY, WEBHOOK_SECRET, Result, Server, app_scenarios, parse_args, wrk
from bench.seed import Scale

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[str]) -> tuple[float, float]:
    """User and system CPU seconds of these processes (those that have ended count 0)."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user / TICK, system / TICK


def children(pid: int) -> list[str]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return found.stdout.split()


def postgres_pids() -> list[str]:
    found = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True)
    return found.stdout.split()


def measure(name: str, server: Server, drive: Callable[[], Result]) -> str:
    assert server.proc is not None
    workers = children(server.proc.pid)
    app0, pg0 = cpu_seconds(workers), cpu_seconds(postgres_pids())
    result = drive()
    app1, pg1 = cpu_seconds(workers), cpu_seconds(postgres_pids())
    n = max(result.rps * result.seconds, 1)
    app_ms = 1000 * (app1[0] - app0[0] + app1[1] - app0[1]) / n
    pg_ms = 1000 * (pg1[0] - pg0[0] + pg1[1] - pg0[1]) / n
    return f"| {name} | {result.rps:.0f} | {app_ms:.2f} | {pg_ms:.2f} | {app_ms + pg_ms:.2f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=6, help="seconds per scenario")
    parser.add_argument(
        "only", nargs="*", default=["API 200", "purchase", "webhook"], help="bench.run names"
    )
    own = parser.parse_args(argv)
    args = parse_args(
        [
            *("--database-url", own.database_url, "--articles", str(own.articles)),
            *("--no-seed", "--only", *own.only),
        ]
    )
    scale = Scale(args.articles, args.readers, args.entitlements, args.pool)
    env = {
        "DATABASE_URL": own.database_url,
        "SECRET_KEY": SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    rows = ["| scenario | req/s | app server CPU ms/request | PostgreSQL CPU ms/request | both |"]
    rows.append("|---|---:|---:|---:|---:|")
    with (
        Server("bench.hello:app", args, env) as hello,
        Server("app:app", args, env) as app,
        tempfile.TemporaryDirectory() as tmp,
    ):
        wrk(args, "warm-up", hello.base + "/", duration=2)
        rows.append(
            measure(
                "hello-world",
                hello,
                lambda: wrk(args, "hello-world", hello.base + "/", duration=own.duration),
            )
        )
        for name, one in app_scenarios(args, scale, True, app.base, Path(tmp)):
            one(1)  # warm-up: each worker learns the view's answer, prepares its statement
            rows.append(measure(name, app, lambda one=one: one(own.duration)))  # type: ignore[misc]
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
