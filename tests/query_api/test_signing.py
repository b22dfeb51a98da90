"""The signing module (keys in a SQLite and a PostgreSQL store): forged, tampered, foreign-purpose and expired tokens refused; keys rotate
without downtime; a token one process signs verifies in another over the same store."""

from __future__ import annotations

import pytest

from archive.errors import ConfigError, InvalidQueryError, NotFoundError
from query_api.keys import KeyRing, KeyStore
from query_api.signing import SignatureError, Signer
from query_api.tokens import open_database


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def signer_over(url: str, clock=None) -> Signer:
    ring = KeyRing(KeyStore(open_database(url)).load)
    return Signer(ring, clock=clock) if clock else Signer(ring)


def test_round_trip_of_json_payloads(store_url):
    signer = signer_over(store_url)
    for payload in ({"offset": 20, "q": "héllo"}, [1, 2, 3], "text", 7, None):
        assert signer.verify(signer.sign(payload, "cursor"), "cursor") == payload


def test_the_error_is_a_400_kind_of_error():
    assert issubclass(SignatureError, InvalidQueryError)


def test_tampered_forged_and_foreign_tokens_are_refused(store_url):
    signer = signer_over(store_url)
    token = signer.sign({"offset": 20}, "cursor")
    key_id, body, mac = token.split(".")
    forged_body = signer.sign({"offset": 2**32}, "cursor").split(".")[1]
    for bad in (
        f"{key_id}.{forged_body}.{mac}",  # another payload under this MAC
        f"{key_id}.{body}.{mac[:-2]}AA",
        f"nokey.{body}.{mac}",
        token + ".x", "", "a.b", "...", "é.é.é", "x" * 10_000,
    ):  # fmt: skip
        with pytest.raises(SignatureError):
            signer.verify(bad, "cursor")
    with pytest.raises(SignatureError):
        signer.verify(token, "widget-ticket")  # a cursor is no ticket


def test_a_signer_with_other_keys_refuses(store_url, tmp_path):
    token = signer_over(store_url).sign(1, "cursor")
    with pytest.raises(SignatureError):
        signer_over(f"sqlite:///{tmp_path}/other.sqlite").verify(token, "cursor")


def test_expiry(store_url):
    clock = Clock()
    signer = signer_over(store_url, clock)
    token = signer.sign("p", "ticket", ttl=60)
    clock.now += 59
    assert signer.verify(token, "ticket") == "p"
    clock.now += 2
    with pytest.raises(SignatureError) as error:
        signer.verify(token, "ticket")
    assert error.value.expired


def test_another_process_over_the_same_store_verifies(store_url):
    token = signer_over(store_url).sign({"a": 1}, "session")
    assert signer_over(store_url).verify(token, "session") == {"a": 1}


def test_rotation_keeps_old_tokens_valid_and_retiring_ends_them(store_url):
    first, second = signer_over(store_url), signer_over(store_url)
    old = first.sign("old", "cursor")
    keys = KeyStore(open_database(store_url))
    new_key = keys.rotate()
    # `second` still signs with the old key until it reloads; it verifies the new one at once.
    new = signer_over(store_url).sign("new", "cursor")
    assert new.startswith(new_key.id + ".")
    assert second.verify(new, "cursor") == "new"
    assert second.verify(old, "cursor") == "old"
    with pytest.raises(ConfigError):
        keys.retire(new_key.id)  # the signing key cannot be retired
    with pytest.raises(NotFoundError):  # as an unknown token or hold id: the archive's answer (exit 1), not a setting
        keys.retire("nosuch")
    # The oldest key listed (the widget's author keys') stays through a rotation, until retired.
    assert signer_over(store_url).keys.oldest().id == old.split(".")[0]
    keys.retire(old.split(".")[0])
    with pytest.raises(SignatureError):
        signer_over(store_url).verify(old, "cursor")
    assert signer_over(store_url).keys.oldest().id == new_key.id


def test_keys_from_the_config_first_signs_all_verify():
    a, b = "a" * 40, "b" * 40
    old = Signer(KeyRing.fixed([a])).sign(1, "cursor")
    rotated = Signer(KeyRing.fixed([b, a]))
    assert rotated.verify(old, "cursor") == 1
    assert Signer(KeyRing.fixed([b])).verify(rotated.sign(2, "cursor"), "cursor") == 2
    assert rotated.keys.oldest().secret == a.encode()  # the last listed
    with pytest.raises(ConfigError):
        KeyRing.fixed(["short"]).current()


def test_mac_of_a_value(store_url):
    signer = signer_over(store_url)
    mac = signer.mac("csrf", "s:abc")
    assert signer.check_mac("csrf", "s:abc", mac)
    assert not signer.check_mac("csrf", "s:abd", mac)
    assert not signer.check_mac("other", "s:abc", mac)
    assert not signer.check_mac("csrf", "s:abc", "")
