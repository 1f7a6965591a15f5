"""The OAuth signing key: its file, the JWKS, and RS256 JWTs, with `cryptography` only.

The key lives in api/oauth/keys/signing.pem (mounted into both containers at
/app/api/oauth). loop-auth creates it on its first start if it is missing and never
replaces one that is there; the api only reads it, and copes with it appearing a moment
after the api started. That the file survives a rebuild is what keeps ChatGPT signed in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

OAUTH_DIR = Path(os.environ.get("LOOP_OAUTH_DIR") or Path(__file__).resolve().parent / "oauth")
KEYS_DIR = OAUTH_DIR / "keys"
KEY_FILE = KEYS_DIR / "signing.pem"


class KeyNotReady(RuntimeError):
    """The signing key is not there (yet): loop-auth creates it on its first start."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def _b64_int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


# --- the key file -------------------------------------------------------------------------

def create_key_if_missing() -> bool:
    """Create the signing key unless one exists; True if this call created it.

    The key is written to a temporary file and hard-linked into place: a reader never sees
    a half-written key, and os.link refuses to replace an existing file, so a key that is
    there (or that another process put there a moment ago) is never overwritten.
    """
    KEYS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    if KEY_FILE.exists():
        return False
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = KEYS_DIR / f".signing.pem.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, KEY_FILE)
        created = True
    except FileExistsError:
        created = False
    except OSError:
        # A filesystem without hard links: create exclusively instead (still never replaces).
        try:
            fd = os.open(KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            created = False
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
            created = True
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(KEYS_DIR, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return created


_cache_lock = threading.Lock()
_cache: tuple[tuple[int, int, int], rsa.RSAPrivateKey] | None = None


def load_key(wait: float = 0.0) -> rsa.RSAPrivateKey:
    """The signing key, re-read only when the file changed; waits up to `wait` s for it."""
    global _cache
    deadline = time.monotonic() + wait
    while True:
        try:
            st = KEY_FILE.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            with _cache_lock:
                if _cache and _cache[0] == stamp:
                    return _cache[1]
            key = serialization.load_pem_private_key(KEY_FILE.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise KeyNotReady(f"{KEY_FILE} is not an RSA key")
            with _cache_lock:
                _cache = (stamp, key)
            return key
        except (FileNotFoundError, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise KeyNotReady(f"no usable signing key at {KEY_FILE} (loop-auth creates it on start)") from exc
            time.sleep(0.1)


# --- JWKS and JWTs ------------------------------------------------------------------------

def public_jwk(key: rsa.RSAPrivateKey) -> dict:
    numbers = key.public_key().public_numbers()
    members = {"e": _int_b64(numbers.e), "kty": "RSA", "n": _int_b64(numbers.n)}
    # RFC 7638 thumbprint as the key id: the same key always has the same kid.
    kid = b64url(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())
    return {**members, "use": "sig", "alg": "RS256", "kid": kid}


def jwks(key: rsa.RSAPrivateKey) -> dict:
    return {"keys": [public_jwk(key)]}


def sign_jwt(claims: dict, key: rsa.RSAPrivateKey) -> str:
    header = {"alg": "RS256", "typ": "at+jwt", "kid": public_jwk(key)["kid"]}
    signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


class InvalidToken(ValueError):
    pass


def jwt_kid(token: str) -> str | None:
    try:
        return json.loads(b64url_decode(token.split(".")[0])).get("kid")
    except (ValueError, IndexError, AttributeError):
        raise InvalidToken("malformed token") from None


def verify_jwt(token: str, key_set: dict, *, issuer: str, leeway: int = 30) -> dict:
    """The claims of an RS256 JWT signed by a key in `key_set`, or InvalidToken."""
    try:
        header_b64, claims_b64, sig_b64 = token.split(".")
        header = json.loads(b64url_decode(header_b64))
        claims = json.loads(b64url_decode(claims_b64))
        signature = b64url_decode(sig_b64)
    except ValueError:
        raise InvalidToken("malformed token") from None
    if header.get("alg") != "RS256":
        raise InvalidToken("unsupported alg")
    jwk = next((k for k in key_set.get("keys", []) if k.get("kid") == header.get("kid")), None)
    if jwk is None or jwk.get("kty") != "RSA":
        raise InvalidToken("unknown key")
    public_key = rsa.RSAPublicNumbers(_b64_int(jwk["e"]), _b64_int(jwk["n"])).public_key()
    try:
        public_key.verify(signature, f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise InvalidToken("bad signature") from None
    now = time.time()
    if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < now - leeway:
        raise InvalidToken("expired")
    if claims.get("iss") != issuer:
        raise InvalidToken("wrong issuer")
    return claims
