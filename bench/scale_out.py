"""Do app servers add up? One server, then two behind nginx, on one PostgreSQL.

    python -m bench.scale_out --database-url postgresql+psycopg://root@127.0.0.1:5432/bench_1k \
        --articles 1000

Uses a database `bench.run` seeded at that scale (it does not seed). Starts two app
servers with the bench's gunicorn command (one worker each unless --workers), and nginx
(from the system, `nginx` on PATH) as a local load balancer in front of them, then drives
with wrk, in turn: server A directly, nginx with A alone, nginx with A and B. The entitled
article API (a bearer token, the render cache and one entitlement lookup) and purchases
(each request a new reader/article pair: row lock, ledger insert, entitlement). Prints
req/s and the ratio of two servers to one through the same balancer.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    Result,
    Server,
    count_rows,
    free_port,
    load,
    purchase_script,
    wrk,
)
from bench.seed import BENCH_READER_ID, Scale, article_slug, full_article, pool_token

NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream app {{
    least_conn;
{servers}
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"""


class Nginx:
    def __init__(self, upstreams: list[str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        servers = "\n".join(f"    server {u.removeprefix('http://')};" for u in upstreams)
        conf = NGINX_CONF.format(dir=self.dir, servers=servers, port=self.port)
        (self.dir / "nginx.conf").write_text(conf)

    def __enter__(self) -> Nginx:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen(
            [nginx, "-c", str(self.dir / "nginx.conf"), "-g", "daemon off;"],
            start_new_session=True,
        )
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError((self.dir / "error.log").read_text())
        return self

    def __exit__(self, *_exc: object) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--entitlements", type=int, default=None)
    parser.add_argument("--pool", type=int, default=64)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--worker-class", default="gthread")
    args = parser.parse_args(argv)
    entitlements = args.entitlements or 10 * args.articles
    scale = Scale(args.articles, max(entitlements // 10, 1000), entitlements, args.pool)
    env = {
        "DATABASE_URL": args.database_url,
        "SECRET_KEY": SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    api_200 = f"/api/v1/articles/{article_slug(full_article(scale))}"
    bearer = {"Authorization": f"Bearer {pool_token(BENCH_READER_ID)}"}
    rows: list[tuple[str, str, Result]] = []
    loads = [load()]
    with (
        Server("app:app", args, env) as a,
        Server("app:app", args, env) as b,
        tempfile.TemporaryDirectory() as tmp,
    ):
        script = purchase_script(scale, Path(tmp))

        def both(where: str, base: str) -> None:
            wrk(args, "warm-up", base + api_200, headers=bearer, duration=2)
            rows.append(
                (where, "article API 200", wrk(args, "api", base + api_200, headers=bearer))
            )
            before = count_rows(args.database_url, "purchases")
            result = wrk(
                args,
                "purchase",
                base + "/",
                script=script,
                script_args=[str(before), str(args.wrk_threads)],
            )
            result.written = count_rows(args.database_url, "purchases") - before
            rows.append((where, "purchase", result))

        both("server A directly", a.base)
        with Nginx([a.base]) as one:
            both("nginx → A", one.base)
        with Nginx([a.base, b.base]) as two:
            both("nginx → A + B", two.base)
    loads.append(load())
    print(f"load average before / after: {loads[0]} / {loads[1]}")
    print(
        f"each server: gunicorn --workers {args.workers} --threads {args.threads}; "
        f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s"
    )
    print("| path | scenario | req/s | p50 ms | p99 ms | non-2xx | written |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for where, name, r in rows:
        written = "" if r.written < 0 else str(r.written)
        print(
            f"| {where} | {name} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.non_2xx} | {written} |"
        )
    by = {(w, n): r.rps for w, n, r in rows}
    for name in ("article API 200", "purchase"):
        print(
            f"{name}: two servers / one through nginx = "
            f"{by[('nginx → A + B', name)] / by[('nginx → A', name)]:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
