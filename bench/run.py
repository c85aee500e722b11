"""Benchmark the read and write paths against a bare Flask app under the same gunicorn.

    python -m bench.run --database-url postgresql+psycopg://root@127.0.0.1:5432/bench_1k \
        --articles 1000 --entitlements 100000

Seeds the database (unless --no-seed), serves a hello-world Flask app and then the app
with the identical gunicorn command, drives each with wrk on loopback, and prints
requests per second, p50 and p99 latency, and the ratio to hello-world for: the front
page, an anonymous teaser page, an entitled full page, the article API (402 and 200),
purchase (each request a different reader/article pair, so each one writes), buy and
read (the same, as an agent does it: `expected_price` and `?include=article`) and webhook
ingest (distinct signed events that each credit a wallet). Hello-world is measured
before and after the app; ratios use the mean of the two, and both are printed.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.cookiejar
import json
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.seed import (
    BENCH_READER_EMAIL,
    BENCH_READER_ID,
    PASSWORD,
    POOL_START,
    Scale,
    agent_token,
    article_slug,
    full_article,
    pool_token,
    seed,
    teaser_article,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WEBHOOK_SECRET = "whsec_bench"  # noqa: S105 - a throwaway secret for a local benchmark
SECRET_KEY = "bench-secret-key-not-for-production"  # noqa: S105
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: str = ""
    notes: list[str] = field(default_factory=list)
    baseline: float = 0.0  # hello-world req/s measured in slices beside this scenario
    seconds: float = 0.0
    written: int = -1  # rows a write scenario really added (-1: not a write scenario)


# --- processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn_command(module: str, port: int, args: argparse.Namespace) -> list[str]:
    """The one command both servers run; only the WSGI module differs."""
    return [
        str(BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--backlog",
        "2048",
        "--log-level",
        "warning",
        module,
    ]


class Server:
    def __init__(self, module: str, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.command = gunicorn_command(module, self.port, args)
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log")
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.base + "/", timeout=2).close()
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not start")

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# --- wrk ---------------------------------------------------------------------------------

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", value.strip())
    if not match:
        raise ValueError(f"unexpected latency {value!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(name: str, output: str) -> Result:
    def find(pattern: str) -> str | None:
        match = re.search(pattern, output)
        return match.group(1) if match else None

    rps = find(r"Requests/sec:\s+([\d.]+)")
    if rps is None:
        raise RuntimeError(f"wrk printed no result for {name}:\n{output}")
    errors = find(r"Socket errors: (.+)")
    return Result(
        name=name,
        rps=float(rps),
        p50_ms=_ms(find(r"\s50%\s+(\S+)") or "0ms"),
        p99_ms=_ms(find(r"\s99%\s+(\S+)") or "0ms"),
        requests=int(find(r"(\d+) requests in") or 0),
        seconds=float(find(r"requests in ([\d.]+)s") or 0),
        non_2xx=int(find(r"Non-2xx or 3xx responses: (\d+)") or 0),
        socket_errors=errors or "",
    )


def wrk(
    args: argparse.Namespace,
    name: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
    script_args: list[str] | None = None,
    duration: int | None = None,
) -> Result:
    command = [
        "/usr/bin/wrk",
        f"-t{args.wrk_threads}",
        f"-c{args.connections}",
        f"-d{duration or args.duration}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(name, output)


# --- scenarios ---------------------------------------------------------------------------


def log_in(base: str) -> str:
    """Log the bench reader in through the real form; the Cookie header a browser would send."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/login").read().decode()
    match = CSRF_META.search(page)
    if match is None:
        raise RuntimeError("no CSRF token on /login")
    form = {"email": BENCH_READER_EMAIL, "password": PASSWORD, "csrf_token": match.group(1)}
    opener.open(f"{base}/login", data=urllib.parse.urlencode(form).encode()).close()
    cookies = "; ".join(f"{c.name}={c.value}" for c in jar)
    if "session=" not in cookies:
        raise RuntimeError("login failed")
    return cookies


def check(url: str, headers: dict[str, str], status: int, must: str, must_not: str = "") -> None:
    """The request the benchmark repeats really answers what it should."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            got, body = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        got, body = exc.code, exc.read().decode()
    if got != status or must not in body or (must_not and must_not in body):
        raise RuntimeError(f"{url}: {got}, unexpected answer: {body[:300]}")


PURCHASE_LUA = """
local tokens = {%(tokens)s}
local articles = %(articles)d
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  offset = tonumber(args[1]) or 0
  nthreads = tonumber(args[2]) or 1
end
-- Request i buys article k of reader r: every (reader, article) pair at most once.
request = function()
  local i = offset + counter * nthreads + tid
  counter = counter + 1
  local r = i %% #tokens
  local k = math.floor(i / #tokens)
  local a = (k + r * 17) %% articles + 1
  return wrk.format("POST", "/api/v1/articles/dispatch-" .. a .. "/purchase" .. "%(query)s",
    {["Authorization"] = "Bearer " .. tokens[r + 1], ["Content-Type"] = "application/json"},
    [==[%(body)s]==])
end
"""
# Buy and read in one request, as an agent does: the price it was shown, the full article back.
BUY_AND_READ_QUERY = "?include=article"
BUY_AND_READ_BODY = '{"expected_price": {"amount": 39, "currency": "usd"}}'

WEBHOOK_LUA = """
local events = {
%(events)s
}
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  nthreads = tonumber(args[1]) or 1
end
request = function()
  local i = (counter * nthreads + tid) %% #events + 1
  counter = counter + 1
  local e = events[i]
  return wrk.format("POST", "/webhooks/stripe",
    {["Content-Type"] = "application/json", ["Stripe-Signature"] = e[2]}, e[1])
end
"""


def count_rows(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
    finally:
        engine.dispose()


def purchase_script(scale: Scale, directory: Path, *, read: bool = False) -> Path:
    """Each request a new (reader, article) pair; `read`: as an agent, buy and read."""
    token = agent_token if read else pool_token
    tokens = ", ".join(f'"{token(uid)}"' for uid in range(POOL_START, scale.bulk_start))
    path = directory / ("buy-and-read.lua" if read else "purchase.lua")
    path.write_text(
        PURCHASE_LUA
        % {
            "tokens": tokens,
            "articles": scale.articles,
            "query": BUY_AND_READ_QUERY if read else "",
            "body": BUY_AND_READ_BODY if read else "",
        }
    )
    return path


def webhook_script(scale: Scale, directory: Path, count: int, database_url: str) -> Path:
    """Distinct payment_intent.succeeded events, each signed now, each crediting a wallet.

    Only PaymentIntents that name one of our top-ups (`dispatch_ref`) are credited, so
    each event gets a pending top-up row of its own first: the scenario measures the
    whole credit (top-up, ledger entry, balance, receipt mail), not an ignored event.
    """
    run = int(time.time())
    unique = time.time_ns()  # event and PaymentIntent ids never repeat across slices
    references = [f"bench{unique % 10**12}x{i}" for i in range(count)]
    readers = [POOL_START + i % scale.pool for i in range(count)]
    pending_topups(database_url, list(zip(readers, references, strict=True)))
    lines = []
    for i in range(count):
        event = {
            "id": f"evt_bench_{unique}_{i}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": run,
            "livemode": False,
            "data": {
                "object": {
                    "id": f"pi_bench_{unique}_{i}",
                    "object": "payment_intent",
                    "status": "succeeded",
                    "amount": 500,
                    "currency": "usd",
                    "latest_charge": f"ch_bench_{unique}_{i}",
                    "metadata": {
                        "dispatch_reader": str(readers[i]),
                        "dispatch_purpose": "wallet_topup",
                        "dispatch_ref": references[i],
                    },
                }
            },
        }
        body = json.dumps(event, separators=(",", ":"))
        signed = f"{run}.{body}".encode()
        digest = hmac.new(WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
        lines.append(f'{{[==[{body}]==], "t={run},v1={digest}"}},')
    path = directory / "webhook.lua"
    path.write_text(WEBHOOK_LUA % {"events": "\n".join(lines)})
    return path


def pending_topups(url: str, rows: list[tuple[int, str]]) -> None:
    """Top-ups the readers started (amount 500 usd), waiting for Stripe's success event."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO topups (user_id, reference, amount, currency, status, "
                    "amount_refunded, created_at) VALUES (:user_id, :reference, 500, 'usd', "
                    "'processing', 0, CURRENT_TIMESTAMP)"
                ),
                [{"user_id": uid, "reference": ref} for uid, ref in rows],
            )
    finally:
        engine.dispose()


def credited_events(url: str) -> int:
    return count_rows(url, "webhook_events WHERE outcome = 'credited'")


Slice = Callable[[int], Result]  # one wrk run of the given seconds


def app_scenarios(
    args: argparse.Namespace, scale: Scale, postgres: bool, base: str, tmp: Path
) -> list[tuple[str, Slice]]:
    """Each scenario checks once that its request answers as intended."""
    teaser = f"/articles/{article_slug(teaser_article(scale))}"
    full = f"/articles/{article_slug(full_article(scale))}"
    api_402 = f"/api/v1{teaser}"
    api_200 = f"/api/v1{full}"
    bearer = {"Authorization": f"Bearer {pool_token(BENCH_READER_ID)}"}
    cookie = {"Cookie": log_in(base)}
    check(base + "/", {}, 200, "Dispatch number")
    check(base + teaser, {}, 200, "Read the whole dispatch", "benchmark body")
    check(base + full, cookie, 200, "benchmark body")
    check(base + api_402, {}, 402, "payment_required", "benchmark body")
    check(base + api_200, bearer, 200, "benchmark body")
    threads = str(args.wrk_threads)

    def read(name: str, path: str, headers: dict[str, str]) -> Slice:
        def one(seconds: int) -> Result:
            return wrk(args, name, base + path, headers=headers, duration=seconds)

        return one

    def buying(name: str, read: bool) -> Slice:
        def one(seconds: int) -> Result:
            # Earlier slices and runs bought the first pairs: start after them, so every
            # request writes.
            before = count_rows(args.database_url, "purchases")
            script = purchase_script(scale, tmp, read=read)
            result = wrk(
                args,
                name,
                base + "/",
                script=script,
                script_args=[str(before), threads],
                duration=seconds,
            )
            result.written = count_rows(args.database_url, "purchases") - before
            return result

        return one

    def webhook(seconds: int) -> Result:
        before = credited_events(args.database_url)
        script = webhook_script(scale, tmp, args.events, args.database_url)
        result = wrk(
            args,
            "webhook ingest",
            base + "/",
            script=script,
            script_args=[threads],
            duration=seconds,
        )
        result.written = credited_events(args.database_url) - before
        return result

    scenarios: list[tuple[str, Slice]] = [
        ("front page (anonymous)", read("front page (anonymous)", "/", {})),
        ("teaser page (anonymous)", read("teaser page (anonymous)", teaser, {})),
        ("full page (entitled)", read("full page (entitled)", full, cookie)),
        ("article API 402", read("article API 402", api_402, {})),
        ("article API 200", read("article API 200", api_200, bearer)),
        ("purchase", buying("purchase", read=False)),
        ("buy and read (agent)", buying("buy and read (agent)", read=True)),
        ("webhook ingest", webhook),
    ]
    return [(n, s) for n, s in scenarios if not args.only or any(o in n for o in args.only)]


def combine(name: str, parts: list[Result]) -> Result:
    """Slices of one scenario as one figure: req/s over all slices, median p50 and p99."""
    seconds = sum(p.seconds for p in parts)
    p50s, p99s = sorted(p.p50_ms for p in parts), sorted(p.p99_ms for p in parts)
    return Result(
        name=name,
        rps=sum(p.requests for p in parts) / seconds,
        p50_ms=p50s[len(p50s) // 2],
        p99_ms=p99s[len(p99s) // 2],
        requests=sum(p.requests for p in parts),
        non_2xx=sum(p.non_2xx for p in parts),
        socket_errors="; ".join(p.socket_errors for p in parts if p.socket_errors),
        seconds=seconds,
        written=sum(p.written for p in parts) if any(p.written for p in parts) else -1,
    )


def run(
    args: argparse.Namespace, scale: Scale, postgres: bool
) -> tuple[list[Result], list[Result]]:
    """Each scenario alternates slices with hello-world, so both see the same machine load.

    Other work on the machine comes and goes; a hello-world figure from a minute
    earlier says little about the load a scenario met. Slices of a few seconds,
    hello-world and the scenario in turn, compare like with like.
    """
    env = {
        "DATABASE_URL": args.database_url,
        "SECRET_KEY": SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    hello_runs: list[Result] = []
    results: list[Result] = []
    piece = max(args.duration // args.rounds, 1)
    with (
        Server("bench.hello:app", args, env) as hello,
        Server("app:app", args, env) as app,
        tempfile.TemporaryDirectory() as tmp,
    ):
        scenarios = app_scenarios(args, scale, postgres, app.base, Path(tmp))
        wrk(args, "warm-up", hello.base + "/", duration=2)
        for name, one in scenarios:
            if name in READS:
                one(2)  # warm-up, not counted
            hellos, parts = [], []
            for _ in range(args.rounds):
                hellos.append(wrk(args, "hello-world", hello.base + "/", duration=piece))
                parts.append(one(piece))
            baseline = combine(f"hello-world (beside {name})", hellos)
            result = combine(name, parts)
            result.baseline = baseline.rps
            if result.written >= 0:
                what = "events stored and credited" if name == "webhook ingest" else "purchases"
                result.notes.append(f"{result.written} {what}")
            if name in ("purchase", "buy and read (agent)") and not postgres:
                result.notes.append("SQLite: one writer at a time")
            hello_runs.append(baseline)
            results.append(result)
            print_progress(baseline)
            print_progress(result)
    return hello_runs, results


READS = {
    "front page (anonymous)",
    "teaser page (anonymous)",
    "full page (entitled)",
    "article API 402",
    "article API 200",
}


def print_progress(result: Result) -> None:
    sys.stderr.write(
        f"  {result.name:<26} {result.rps:>9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p99 {result.p99_ms:7.2f} ms  non-2xx {result.non_2xx}\n"
    )


# --- report ------------------------------------------------------------------------------


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, {cpu}"


GOALS = {
    "front page (anonymous)": 0.8,
    "teaser page (anonymous)": 0.8,
    "article API 402": 0.8,
    "full page (entitled)": 0.5,
    "article API 200": 0.5,
    "purchase": 0.3,
    "buy and read (agent)": 0.3,
    "webhook ingest": 0.4,
}


def report(
    args: argparse.Namespace, scale: Scale, hello: list[Result], app: list[Result], loads: list[str]
) -> str:
    kind = args.database_url.split(":", 1)[0].split("+", 1)[0]
    sample = gunicorn_command("MODULE", 0, args)
    lines = [
        f"machine: {machine()}",
        f"database: {kind}; {scale.articles:,} articles, {scale.readers:,} readers, "
        f"{scale.entitlements:,} entitlements",
        f"server: gunicorn {' '.join(shlex.quote(p) for p in sample[1:])} "
        "(MODULE = app:app or bench.hello:app)",
        f"load: wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s --latency "
        "(loopback)",
        f"load average (1, 5, 15 min) before / after: {loads[0]} / {loads[1]}",
        f"each scenario: {args.rounds} slices of {max(args.duration // args.rounds, 1)} s, "
        "alternating with hello-world slices; req/s over all slices, p50/p99 the median "
        "slice's",
        "",
        "| scenario | req/s | p50 ms | p99 ms | hello req/s | hello p50 ms | ratio | goal "
        "| non-2xx | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r, h in zip(app, hello, strict=True):
        ratio = r.rps / r.baseline
        goal = GOALS.get(r.name)
        verdict = "" if goal is None else f"≥ {goal} " + ("yes" if ratio >= goal else "no")
        notes = "; ".join([*r.notes, *([r.socket_errors] if r.socket_errors else [])])
        lines.append(
            f"| {r.name} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.baseline:.0f} | "
            f"{h.p50_ms:.2f} | {ratio:.2f} | {verdict} | {r.non_2xx} | {notes} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--database-url", default=f"sqlite:///{ROOT / 'bench' / 'data' / 'bench.sqlite'}"
    )
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=None, help="default: entitlements / 10")
    parser.add_argument("--entitlements", type=int, default=None, help="default: 10 × articles")
    parser.add_argument("--pool", type=int, default=64, help="funded readers that buy")
    parser.add_argument(
        "--no-seed", action="store_true", help="reuse a database seeded at this scale"
    )
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per scenario")
    parser.add_argument(
        "--rounds", type=int, default=5, help="slices per scenario, alternating with hello-world"
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--events", type=int, default=8000, help="signed events per slice")
    parser.add_argument("--only", nargs="*", help="substrings of scenario names to run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.entitlements is None:
        args.entitlements = 10 * args.articles
    if args.readers is None:
        args.readers = max(args.entitlements // 10, 1000)
    return args


def main(argv: list[str] | None = None) -> int:
    # A plain SIGTERM would leave the gunicorn servers behind; exit through the `with`s.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args(argv)
    scale = Scale(args.articles, args.readers, args.entitlements, args.pool)
    if not args.no_seed:
        seed(args.database_url, scale)
    if args.seed_only:
        return 0
    postgres = args.database_url.startswith("postgresql")
    loads = [load()]
    sys.stderr.write("running: hello-world, then each scenario followed by hello-world again\n")
    hello, app = run(args, scale, postgres)
    loads.append(load())
    text = report(args, scale, hello, app, loads)
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"hello": [r.__dict__ for r in hello], "app": [r.__dict__ for r in app]}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
