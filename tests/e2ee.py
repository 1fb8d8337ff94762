"""Real ed25519 keys for E2EE tests: device keys, one-time keys and cross-signing keys,
signed the way clients sign them (signedjson over canonical JSON)."""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from typing import Any

from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from tests.matrix import MatrixClient, User

JsonDict = dict[str, Any]
ALGORITHMS = ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]


def _curve_key() -> str:
    # Not a real curve25519 key: the server stores and relays it without reading it.
    return encode_verify_key_base64(get_verify_key(generate_signing_key("c")))


@dataclass
class Device:
    user: User
    signing_key: Any = field(init=False)
    curve_key: str = field(init=False)

    def __post_init__(self) -> None:
        self.signing_key = generate_signing_key(self.user.device_id)
        self.curve_key = _curve_key()

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.user.device_id}"

    @property
    def public_key(self) -> str:
        return encode_verify_key_base64(get_verify_key(self.signing_key))

    def sign(self, value: JsonDict) -> JsonDict:
        return dict(sign_json(copy.deepcopy(value), self.user.user_id, self.signing_key))

    def device_keys(self) -> JsonDict:
        return self.sign(
            {
                "user_id": self.user.user_id,
                "device_id": self.user.device_id,
                "algorithms": ALGORITHMS,
                "keys": {
                    f"curve25519:{self.user.device_id}": self.curve_key,
                    self.key_id: self.public_key,
                },
            }
        )

    def one_time_keys(self, count: int, prefix: str = "") -> JsonDict:
        prefix = prefix or secrets.token_hex(3)
        return {
            f"signed_curve25519:{prefix}{n:04d}": self.sign({"key": _curve_key()})
            for n in range(count)
        }

    def fallback_key(self, key_id: str = "fb1") -> JsonDict:
        return {f"signed_curve25519:{key_id}": self.sign({"key": _curve_key(), "fallback": True})}


@dataclass
class CrossSigning:
    """A user's three cross-signing keys."""

    user_id: str
    master: Any = field(init=False)
    self_signing: Any = field(init=False)
    user_signing: Any = field(init=False)

    def __post_init__(self) -> None:
        self.master = generate_signing_key("m")
        self.self_signing = generate_signing_key("s")
        self.user_signing = generate_signing_key("u")
        for key in (self.master, self.self_signing, self.user_signing):
            key.version = encode_verify_key_base64(get_verify_key(key))

    @staticmethod
    def public(key: Any) -> str:
        return str(key.version)

    def key_object(self, key: Any, usage: str) -> JsonDict:
        value: JsonDict = {
            "user_id": self.user_id,
            "usage": [usage],
            "keys": {f"ed25519:{self.public(key)}": self.public(key)},
        }
        if usage != "master":
            value = dict(sign_json(value, self.user_id, self.master))
        return value

    def upload_body(self) -> JsonDict:
        return {
            "master_key": self.key_object(self.master, "master"),
            "self_signing_key": self.key_object(self.self_signing, "self_signing"),
            "user_signing_key": self.key_object(self.user_signing, "user_signing"),
        }

    def sign_with(self, key: Any, value: JsonDict) -> JsonDict:
        unsigned = {k: v for k, v in value.items() if k not in ("signatures", "unsigned")}
        return dict(sign_json(unsigned, self.user_id, key))


async def upload_device(hs: MatrixClient, user: User, one_time_keys: int = 0) -> Device:
    """The user's device with its identity keys (and `one_time_keys` keys) uploaded."""
    device = Device(user)
    body: JsonDict = {"device_keys": device.device_keys()}
    if one_time_keys:
        body["one_time_keys"] = device.one_time_keys(one_time_keys)
    await hs.ok("POST", "keys/upload", body, user=user)
    return device


async def login_again(hs: MatrixClient, user: User, device_id: str | None = None) -> User:
    """A second device of `user`."""
    body: JsonDict = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password,
    }
    if device_id is not None:
        body["device_id"] = device_id
    reply = await hs.ok("POST", "login", body)
    return User(user.user_id, reply["access_token"], reply["device_id"], user.password)
