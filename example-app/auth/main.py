"""loop-auth: owns the OAuth signing key and database, and serves the JWKS.

On start it creates api/oauth/keys/signing.pem and api/oauth/oauth.db if they are missing
(never replacing them), then serves on :8084
  GET /.well-known/jwks.json   the public signing key (the api fetches it from here)
  GET /health                  200 {"status": "ok", "kid": ...}
Deleting keys/ and recreating this container is how the keys are rotated.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from api import signing, store

PORT = int(os.environ.get("LOOP_AUTH_PORT") or 8084)


def main() -> None:
    if signing.create_key_if_missing():
        print(f"loop-auth: created a new signing key at {signing.KEY_FILE}", flush=True)
    store.connect().close()
    started_with = signing.load_key()

    def current_jwks() -> dict:
        # Re-read only if the file changed; keep serving the last good key if it went away.
        try:
            return signing.jwks(signing.load_key())
        except signing.KeyNotReady:
            return signing.jwks(started_with)

    print(f"loop-auth: serving JWKS kid {signing.public_jwk(started_with)['kid']} on :{PORT}", flush=True)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/.well-known/jwks.json":
                self.reply(200, current_jwks(), cache="public, max-age=60")
            elif path == "/health":
                self.reply(200, {"status": "ok", "kid": current_jwks()["keys"][0]["kid"]})
            else:
                self.reply(404, {"error": "not found"})

        def reply(self, status: int, body: dict, cache: str = "no-store") -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", cache)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, fmt: str, *args) -> None:
            sys.stderr.write(f"{self.address_string()} - {fmt % args}\n")

    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    # PID 1 in the container: without a handler SIGTERM is ignored and `docker stop`
    # would wait its full timeout before killing.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
