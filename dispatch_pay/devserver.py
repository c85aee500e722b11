"""`make run`: migrate, seed the demo, start the local Stripe stand-in if needed, serve.

Run as `python -m dispatch_pay.devserver`. For development only; production runs
`gunicorn app:app` (see DEPLOY notes in the README).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _flask(*args: str, env: dict[str, str]) -> None:
    subprocess.run(  # noqa: S603 - fixed command line, no user input
        [sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env, check=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    options = parser.parse_args()
    env = dict(os.environ)
    _flask("db", "upgrade", env=env)
    _flask("seed-demo", env=env)
    from dispatch_pay.demo import PUBLISHER_EMAIL, PUBLISHER_PASSWORD, READER_EMAIL, READER_PASSWORD

    url = f"http://{options.host}:{options.port}/"
    print("\n" + "=" * 64)
    print(f"  dispatch_pay is running at {url}")
    print(f"  Reader login:    {READER_EMAIL} / {READER_PASSWORD}")
    print(f"  Publisher login: {PUBLISHER_EMAIL} / {PUBLISHER_PASSWORD}")
    print("=" * 64 + "\n", flush=True)
    os.execvpe(  # noqa: S606 - replaces this process with the server
        sys.executable,
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "app",
            "run",
            "--host",
            options.host,
            "--port",
            str(options.port),
        ],
        env,
    )


if __name__ == "__main__":
    main()
