"""The requests through the proxy's port (scripts/lib-proxy.sh: ask_port, wait_port_answers,
verify_through_proxy), run with bash and curl as on the NAS against a real HTTP server that
answers as the proxy does (X-Loop-Color) or as the app's own container does (no color)."""

from __future__ import annotations

import http.server
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


class Health(http.server.BaseHTTPRequestHandler):
    """GET /health: the (status, X-Loop-Color) pairs of `server.answers`, one a request (the last
    one from then on); no X-Loop-Color header for an empty color."""

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        answers = self.server.answers
        code, color = answers.pop(0) if len(answers) > 1 else answers[0]
        self.send_response(code)
        if color:
            self.send_header("X-Loop-Color", color)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    httpd.answers = [(200, "")]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def run(port: int, script: str) -> subprocess.CompletedProcess:
    libraries = " && ".join(f". {REPO}/scripts/{name}" for name in ("lib.sh", "lib-deploy.sh", "lib-proxy.sh"))
    return subprocess.run(["bash", "-c", f"{libraries} && PROXY_HOST=127.0.0.1 PROXY_PORT={port} HEALTH_PATH=/health "
                                         f"&& {script}"],
                          capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})


def test_ask_port_says_the_status_and_the_color(server):
    server.answers = [(200, "green"), (503, "")]
    assert run(server.server_port, "ask_port 2; ask_port 2").stdout == "200 green\n503 \n"


def test_ask_port_says_0_when_nothing_answers(server):
    port = server.server_port
    server.shutdown()
    server.server_close()
    assert run(port, "ask_port 1").stdout == "0 \n"


def test_an_error_page_is_an_answer_for_wait_port_answers(server):
    server.answers = [(502, "")]
    assert run(server.server_port, "wait_port_answers").returncode == 0


def test_the_verification_waits_for_the_color_it_asked_for(server):
    """The reload is asynchronous: an error and the old color first, then the new one."""
    server.answers = [(502, ""), (200, "blue"), (200, "green")]
    done = run(server.server_port, "verify_through_proxy green 1")
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_traffic_that_goes_back_to_the_old_color_fails_the_switch(server):
    server.answers = [(200, "green"), (200, "blue")]
    done = run(server.server_port, "verify_through_proxy green 5")
    assert (done.returncode, done.stderr) == (1, "WARNING: traffic went back to 'blue'\n")


def test_the_app_s_own_container_names_no_color_and_is_verified_by_the_same_loop(server):
    """A rollback to the app's own container: whoever holds the port counts, and every answer
    in the window must be a 200."""
    done = run(server.server_port, "verify_through_proxy '' 0")
    assert done.returncode == 0, done.stderr
    server.answers = [(200, ""), (200, ""), (503, "")]
    done = run(server.server_port, "verify_through_proxy '' 5")
    url = f"http://127.0.0.1:{server.server_port}/health"
    assert (done.returncode, done.stderr) == (1, f"WARNING: port {server.server_port} answered 503 for {url}\n")
