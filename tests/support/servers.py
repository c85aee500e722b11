"""Real processes for tests: localstripe (Stripe's stand-in) and the app under gunicorn."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05
) -> bool:
    """Poll a condition until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


class Process:
    def __init__(self, args: list[str], env: dict[str, str], ready_url: str, log: Path) -> None:
        self.args, self.env, self.ready_url, self.log_path = args, env, ready_url, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self._spawn(log)
        if not wait_until(lambda: _answers(self.ready_url), timeout=30):
            self.stop()
            raise RuntimeError(f"{self.args[0]} did not start; see {self.log_path}")

    def _spawn(self, log: object) -> None:
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=log,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): it accepts connections but never answers."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)


class LocalStripe(Process):
    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        super().__init__(
            [str(BIN / "localstripe"), "--port", str(self.port), "--from-scratch"],
            dict(os.environ),
            f"{self.base}/js.stripe.com/v3/",
            log_dir / "localstripe.log",
        )

    def register_webhook(self, url: str, secret: str, name: str = "dispatch") -> None:
        data = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
        request = urllib.request.Request(f"{self.base}/_config/webhooks/{name}", data=data)
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200


class AppServer(Process):
    """The app under gunicorn, configured entirely through the environment."""

    def __init__(
        self, log_dir: Path, env: dict[str, str], workers: int = 2, name: str = "app"
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **env}
        super().__init__(
            [
                str(BIN / "gunicorn"),
                "app:app",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--threads",
                "4",
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
            ],
            full_env,
            f"{self.base}/healthz",
            log_dir / f"{name}.log",
        )


import urllib.parse  # noqa: E402 - used by LocalStripe.register_webhook


class MailSender(Process):
    """`flask send-mail --forever`: the outbox delivery process, as production runs it."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        super().__init__(
            [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "app",
                "send-mail",
                "--forever",
                "--interval",
                "0.3",
            ],
            {**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            "",
            log_dir / "send-mail.log",
        )

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._spawn(log)
        if not wait_until(lambda: "send-mail: delivering" in self.log_path.read_text(), timeout=30):
            self.stop()
            raise RuntimeError(f"send-mail did not start; see {self.log_path}")
