"""The users file of the labeling app: who may log in, with which role and password hash.

A TOML file (`[[users]]` tables) or a JSON file (`{"users": [...]}`), chosen by its suffix;
each user has `name`, `role` (`annotator` or `reviewer`: `dvmset.records.Role`; a reviewer's
votes outrank annotators' and their queue starts with the disputed clips) and `password_hash`,
a salted scrypt hash written as `scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`. Plain passwords
are never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from dvmset.errors import ConfigError
from dvmset.records import Role
from dvmset.storage import atomic_write_text

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SALT_BYTES, _KEY_BYTES = 2**14, 8, 1, 16, 32


class UsersFileError(ConfigError):
    """The users file cannot be read, or an entry in it is invalid."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A salted scrypt hash of `password` in the users file's format."""
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_KEY_BYTES)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${key.hex()}"


def verify_password(password: str, password_hash: str) -> bool:
    """Whether `password` matches `password_hash` (constant-time comparison); False for a malformed hash."""
    try:
        scheme, n, r, p, salt_hex, key_hex = password_hash.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(key_hex)
        key = hashlib.scrypt(
            password.encode("utf-8"), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:
        return False
    return hmac.compare_digest(key, expected)


_DUMMY_HASH = hash_password("", salt=bytes(_SALT_BYTES))  # checked for unknown names: the same time as a real one


class Authenticator:
    """Gradio's `auth` hook: `(name, password) -> bool` against the users file's entries."""

    def __init__(self, users: dict[str, User]):
        self.users = users

    def __call__(self, name: str, password: str) -> bool:
        user = self.users.get(name)
        ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
        return ok and user is not None

    def role(self, name: str) -> Role | None:
        user = self.users.get(name)
        return user.role if user else None


def load_users(path: Path) -> dict[str, User]:
    """Name -> `User` from a TOML or JSON users file; UsersFileError when it is unreadable or invalid."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError and JSONDecodeError are ValueErrors
        raise UsersFileError(f"cannot read users file {path}: {exc}") from exc
    users: dict[str, User] = {}
    for entry in data.get("users", []) if isinstance(data, dict) else [None]:
        user = _user(entry, path)
        if user.name in users:
            raise UsersFileError(f"{path}: user {user.name!r} appears twice")
        users[user.name] = user
    return users


def _user(entry: object, path: Path) -> User:
    if not isinstance(entry, dict) or set(entry) != {"name", "role", "password_hash"}:
        raise UsersFileError(f"{path}: every user needs exactly name, role and password_hash; got {entry!r}")
    name, role, password_hash = entry["name"], entry["role"], entry["password_hash"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UsersFileError(f"{path}: invalid user name {name!r} (letters, digits, '_', '.', '-'; at most 64)")
    if role not in {r.value for r in Role}:
        raise UsersFileError(f"{path}: user {name!r} has role {role!r}; use one of {[r.value for r in Role]}")
    if not isinstance(password_hash, str) or not password_hash.startswith("scrypt$"):
        raise UsersFileError(f"{path}: user {name!r} needs a password_hash made by `dvmset label --add-user`")
    return User(name, Role(role), password_hash)


def add_user(path: Path, name: str, role: Role, password: str) -> None:
    """Add `name` to the users file (or replace its entry), creating the file if needed."""
    if not _NAME_RE.match(name):
        raise UsersFileError(f"invalid user name {name!r} (letters, digits, '_', '.', '-'; at most 64)")
    if not password:
        raise UsersFileError("the password is empty")
    users = load_users(path) if path.exists() else {}
    users[name] = User(name, role, hash_password(password))
    atomic_write_text(path, _dump(list(users.values()), json_format=path.suffix.lower() == ".json"))


def _dump(users: list[User], json_format: bool) -> str:
    rows = [asdict(user) | {"role": user.role.value} for user in users]
    if json_format:
        return json.dumps({"users": rows}, indent=2) + "\n"
    blocks = ["# dvmset label users: edit with `dvmset label --users FILE --add-user NAME`"]
    for row in rows:  # names, roles and hashes hold no quotes or backslashes (checked above)
        blocks.append("\n".join(["[[users]]", *(f'{key} = "{value}"' for key, value in row.items())]))
    return "\n\n".join(blocks) + "\n"
