"""Example auth service: keeps an RSA signing key and an OAuth database, serves the JWKS.

Keys and database live in the persistent OAuth volume; a missing key is generated on
start, which is what `inv rebuild-all` relies on for "new OAuth keys".
"""

import base64
import json
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DATA = Path("/data/oauth")
KEY_FILE = DATA / "keys" / "signing.pem"


def load_or_create_key() -> rsa.RSAPrivateKey:
    if not KEY_FILE.exists():
        KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        KEY_FILE.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        KEY_FILE.chmod(0o600)
    return serialization.load_pem_private_key(KEY_FILE.read_bytes(), password=None)


def b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def jwks(key: rsa.RSAPrivateKey) -> bytes:
    numbers = key.public_key().public_numbers()
    kid = b64(numbers.n)[:16]
    return json.dumps({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                                 "n": b64(numbers.n), "e": b64(numbers.e)}]}).encode()


def main() -> None:
    body = jwks(load_or_create_key())
    with sqlite3.connect(DATA / "oauth.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS clients (client_id TEXT PRIMARY KEY, created TEXT)")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/.well-known/jwks.json":
                self.reply(200, body)
            elif self.path == "/health":
                self.reply(200, b'{"status": "ok"}')
            else:
                self.reply(404, b'{"error": "not found"}')

        def reply(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    ThreadingHTTPServer(("0.0.0.0", 8084), Handler).serve_forever()


if __name__ == "__main__":
    main()
