"""The handshake decision (csms.gateway.auth) against an in-memory registry."""

from __future__ import annotations

import base64
import ssl

import pytest

from csms.gateway.auth import (
    CLOSED_FOR_ABUSE_REPEATEDLY,
    FAILED_TO_AUTHENTICATE,
    INVALID_CERTIFICATE,
    INVALID_TLS_VERSION,
    PROFILE_MISMATCH,
    TLS_UNIDENTIFIED,
    TOO_MANY_FAILURES,
    AuthConfig,
    Authenticator,
    ClientCertificate,
    FailureThrottle,
    Handshake,
    Refusal,
    parse_basic,
    tls_failure_event,
)
from csms.gateway.limits import (
    EventSampler,
    HandshakeRate,
    PendingHandshakes,
    PingBudget,
    ReplacementWatch,
    StrikeBudget,
)
from streams.registry import (
    StationRecord,
    check_password_rules,
    generate_password,
    hash_password,
    verify_password,
)


class Directory:
    """The StationDirectory port over a dict (what StationRegistry does from its cache)."""

    def __init__(self, *records: StationRecord) -> None:
        self.records = {r.identity.lower(): r for r in records}
        self.checks = 0

    def lookup(self, identity: str) -> StationRecord | None:
        return self.records.get(identity.lower())

    def check_password(self, identity: str, password: bytes) -> bool:
        self.checks += 1
        station = self.lookup(identity)
        return station is not None and station.check_password(password)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


PASSWORD = "Secret-password:with@colon-16+"
CERT = ClientCertificate(common_name="SN-0001", organization="Test CSO", fingerprint="ab" * 32)


def basic(user: str, password: str | bytes) -> str:
    raw = password.encode() if isinstance(password, str) else password
    return "Basic " + base64.b64encode(user.encode() + b":" + raw).decode()


def make(
    unknown: str = "reject", clock: Clock | None = None
) -> tuple[Authenticator, list[Refusal], Directory]:
    directory = Directory(
        StationRecord(identity="CS001", profile=1, password_hash=hash_password(PASSWORD)),
        StationRecord(identity="tls-2", profile=2, password_hash=hash_password(PASSWORD)),
        StationRecord(identity="mtls-3", profile=3, cert_serial="SN-0001"),
        StationRecord(identity="open-0", profile=0),
    )
    refusals: list[Refusal] = []
    config = AuthConfig(unknown_stations="reject" if unknown == "reject" else "accept",
                        cso_name="Test CSO")  # fmt: skip
    auth = Authenticator(directory, config, refusals.append, clock or Clock())
    return auth, refusals, directory


def hs(identity: str, authorization: str | None = None, **kw: object) -> Handshake:
    return Handshake(identity, str(kw.pop("address", "10.0.0.1")), authorization, **kw)  # type: ignore[arg-type]


def test_profile_1_needs_the_right_password_and_username() -> None:
    auth, refusals, _ = make()
    assert auth.decide(hs("CS001", basic("CS001", PASSWORD))).accepted
    assert auth.decide(hs("cs001", basic("cs001", PASSWORD))).accepted  # A6: 2.x case
    assert auth.decide(hs("CS001", None)).status == 401  # A1
    assert auth.decide(hs("CS001", basic("CS001", "wrong-password-0000"))).status == 401  # A2
    assert auth.decide(hs("CS001", basic("tls-2", PASSWORD))).status == 401  # A3
    assert auth.decide(hs("CS001", "Bearer abc")).status == 401
    assert [r.event for r in refusals] == [FAILED_TO_AUTHENTICATE] * 4
    assert all(PASSWORD not in r.reason for r in refusals)


def test_16_usernames_are_case_sensitive() -> None:
    auth, _, _ = make()
    ok = hs("CS001", basic("CS001", PASSWORD), case_insensitive=False)
    assert auth.decide(ok).accepted
    wrong_case = hs("CS001", basic("cs001", PASSWORD), case_insensitive=False)
    assert auth.decide(wrong_case).status == 401


def test_16_raw_key_bytes_match_their_hex_spelling() -> None:
    key = bytes(range(20))
    directory = Directory(
        StationRecord(identity="AL1000", profile=1, password_hash=hash_password(key.hex().upper()))
    )
    auth = Authenticator(directory, AuthConfig(unknown_stations="reject"))
    assert auth.decide(hs("AL1000", basic("AL1000", key), case_insensitive=False)).accepted


def test_unknown_stations_rejected_uniformly_or_accepted_in_demo_mode() -> None:
    auth, _refusals, directory = make("reject")
    verdict = auth.decide(hs("nobody", basic("nobody", PASSWORD)))
    assert verdict.status == 401
    assert verdict.event == FAILED_TO_AUTHENTICATE
    assert directory.checks == 1  # the same work as a wrong password
    demo, _, _ = make("accept")
    assert demo.decide(hs("nobody", None)).accepted


def test_no_downgrade() -> None:
    auth, _refusals, _ = make()
    plain = auth.decide(hs("tls-2", basic("tls-2", PASSWORD)))
    assert plain.status == 401
    assert plain.event == PROFILE_MISMATCH
    assert auth.decide(hs("tls-2", basic("tls-2", PASSWORD), tls=True)).accepted
    basic_only = auth.decide(hs("mtls-3", basic("mtls-3", PASSWORD), tls=True))
    assert basic_only.status == 401
    assert basic_only.event == PROFILE_MISMATCH
    assert auth.decide(hs("mtls-3", None, tls=False, certificate=CERT)).status == 401
    assert auth.decide(hs("open-0", None)).accepted


def test_profile_3_certificate_identity() -> None:
    auth, refusals, _ = make()
    assert auth.decide(hs("mtls-3", None, tls=True, certificate=CERT)).accepted
    other = ClientCertificate("SN-0002", "Test CSO", "cd" * 32)
    assert auth.decide(hs("mtls-3", None, tls=True, certificate=other)).status == 401  # A19
    foreign = ClientCertificate("SN-0001", "Other CSO", "ef" * 32)
    assert auth.decide(hs("mtls-3", None, tls=True, certificate=foreign)).status == 401  # A20
    assert [r.event for r in refusals] == [INVALID_CERTIFICATE] * 2


def test_pinned_fingerprint() -> None:
    directory = Directory(
        StationRecord(identity="pin", profile=3, cert_serial="SN-0001", cert_fingerprint="00" * 32)
    )
    auth = Authenticator(directory, AuthConfig())
    assert auth.decide(hs("pin", None, tls=True, certificate=CERT)).status == 401


def test_repeated_failures_are_throttled_per_identity_and_address() -> None:
    clock = Clock()
    auth, refusals, directory = make(clock=clock)
    wrong = basic("CS001", "wrong-password-0000")
    verdicts = [auth.decide(hs("CS001", wrong, address="6.6.6.6")) for _ in range(30)]
    assert [v.status for v in verdicts[:10]] == [401] * 10
    assert {v.status for v in verdicts[10:]} == {429}  # A23
    assert directory.checks == 10  # throttled attempts cost no hashing
    assert [r.event for r in refusals][-1] == TOO_MANY_FAILURES
    assert len(refusals) == 10  # one security event per burst, not per attempt
    # the real station, from its own address, connects on its first attempt
    assert auth.decide(hs("CS001", basic("CS001", PASSWORD), address="10.0.0.7")).accepted
    # the right password from the attacker's address is refused while throttled...
    assert auth.decide(hs("CS001", basic("CS001", PASSWORD), address="6.6.6.6")).status == 429
    clock.now += 60.0  # ...and the bucket drains within the window
    assert auth.decide(hs("CS001", basic("CS001", PASSWORD), address="6.6.6.6")).accepted


def test_an_address_spraying_identities_is_throttled() -> None:
    auth, _, _ = make()
    statuses = [auth.decide(hs(f"id{i}", basic(f"id{i}", PASSWORD))).status for i in range(120)]
    assert statuses[:100] == [401] * 100
    assert set(statuses[100:]) == {429}


def test_failure_throttle_memory_is_bounded() -> None:
    throttle = FailureThrottle(budget=3, window_s=60.0, max_keys=10)
    for i in range(100):
        throttle.fail(f"k{i}", 0.0)
    assert len(throttle._levels) == 10


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("a", "b:c"), ("a", b"b:c")),  # A7: split at the first colon
        ("basic " + base64.b64encode(b"a:").decode(), ("a", b"")),
        ("Basic !!!", None),
        ("Basic " + base64.b64encode(b"no-colon").decode(), None),
        (None, None),
    ],
)
def test_parse_basic(header: str | None, expected: tuple[str, bytes] | None) -> None:
    assert parse_basic(header) == expected


def test_password_rules_and_hashes() -> None:
    check_password_rules("a" * 16)  # A8
    check_password_rules("a" * 64)
    for bad in ["a" * 15, "a" * 65, "has space in it 123"]:
        with pytest.raises(ValueError, match="password"):
            check_password_rules(bad)
    generated = generate_password()
    assert len(generated) == 40
    check_password_rules(generated)
    stored = hash_password(generated)
    assert generated not in stored
    assert stored.startswith("pbkdf2-sha256$")
    assert verify_password(stored, generated.encode())
    assert not verify_password(stored, b"x" + generated.encode())
    assert hash_password(generated) != stored  # salted
    assert not verify_password("garbage", b"x")


def test_pending_handshakes_cap_per_address() -> None:
    pending = PendingHandshakes(per_address=2)
    assert pending.admit("a")
    assert pending.admit("a")
    assert not pending.admit("a")
    assert pending.admit("b")
    pending.release("a")
    assert pending.admit("a")
    pending.release("a")
    pending.release("a")
    assert pending.pending("a") == 0


def test_strike_budget() -> None:
    clock = Clock()
    budget = StrikeBudget(strikes=20, window_s=60.0, clock=clock)
    assert not any(budget.strike() for _ in range(20))
    assert budget.strike()  # the 21st within 60 s (D12)
    clock.now += 61.0
    assert not budget.strike()


def test_handshake_rate_per_address() -> None:
    clock = Clock()
    rate = HandshakeRate(per_s=20.0, burst=50, clock=clock)
    assert all(rate.allow("a") for _ in range(50))
    assert not rate.allow("a")  # D3: over the burst
    assert rate.allow("b")  # other addresses unaffected
    clock.now += 0.5  # 10 tokens back
    assert sum(rate.allow("a") for _ in range(20)) == 10


def test_ping_budget() -> None:
    clock = Clock()
    budget = PingBudget(per_s=2.0, burst=10, clock=clock)
    assert all(budget.allow() for _ in range(10))
    assert not budget.allow()  # D8: a flood is cut
    clock.now += 1.0
    assert [budget.allow() for _ in range(3)] == [True, True, False]


def test_replacement_watch() -> None:
    clock = Clock()
    watch = ReplacementWatch(limit=3, window_s=60.0, clock=clock)
    assert [watch.replaced("cs") for _ in range(4)] == [False, False, False, True]  # A25
    assert not watch.replaced("other")
    clock.now += 61.0
    assert not watch.replaced("cs")


def test_replacement_watch_refuses_past_its_budget() -> None:
    clock = Clock()
    watch = ReplacementWatch(limit=3, window_s=60.0, clock=clock, refuse_after=10)
    assert not watch.refusing("cs")
    for n in range(10):
        assert not watch.refusing("cs"), n
        watch.replaced("cs")
    assert watch.refusing("cs")  # D11: the 11th replacement within 60 s is refused
    assert not watch.refusing("other")
    clock.now += 61.0
    assert not watch.refusing("cs")


def test_abuse_closes_throttle_the_pair_then_the_address() -> None:
    clock = Clock()
    auth, refusals, _ = make("accept", clock)
    budget = auth.config.abuse_closes_per_identity_address
    for _ in range(budget):
        assert auth.decide(hs("flooder")).accepted
        auth.abused("flooder", "10.0.0.1", "too many pings")
    assert auth.decide(hs("flooder")).status == 429  # D8: reconnecting at once is refused
    assert [r.event for r in refusals] == [CLOSED_FOR_ABUSE_REPEATEDLY]  # once, when it filled
    assert auth.decide(hs("flooder", address="10.0.0.2")).accepted  # other address
    assert auth.decide(hs("neighbour")).accepted  # other identity, same address
    clock.now += auth.config.failure_window_s / budget  # the leak lets one more in
    assert auth.decide(hs("flooder")).accepted
    # an accepted upgrade does not forgive (unlike a good password after wrong ones)
    assert auth.decide(hs("flooder")).accepted
    auth.abused("flooder", "10.0.0.1", "too many pings")
    assert auth.decide(hs("flooder")).status == 429
    # identities rotated from one address: the address's own budget
    for n in range(auth.config.abuse_closes_per_address):
        auth.abused(f"rotating-{n}", "10.0.0.9", "too many invalid messages")
    assert auth.decide(hs("rotating-new", address="10.0.0.9")).status == 429


def test_event_sampler_one_per_address_per_window_and_a_global_rate() -> None:
    now = [0.0]
    sampler = EventSampler(window_s=60, per_s=1, burst=2, clock=lambda: now[0])
    assert sampler.sample("a") == 0
    assert [sampler.sample("a") for _ in range(5)] == [None] * 5
    assert sampler.sample("b") == 0
    assert sampler.sample("c") is None  # the global burst (2) is spent
    now[0] = 61.0
    assert sampler.sample("a") == 5  # recorded again, with the count suppressed meanwhile
    assert sampler.sample("c") == 1


def test_tls_failures_are_classified_and_sampled() -> None:
    refusals: list[Refusal] = []
    auth = Authenticator(Directory(), AuthConfig(), on_refused=refusals.append)
    version = ssl.SSLError(1, "[SSL: UNSUPPORTED_PROTOCOL] unsupported protocol")
    version.reason = "UNSUPPORTED_PROTOCOL"
    auth.tls_failed("10.0.0.1", version)
    auth.tls_failed("10.0.0.1", version)  # same address, same window: not recorded
    auth.tls_failed("10.0.0.2", ConnectionResetError())  # not a TLS refusal: log only
    auth.tls_failed("10.0.0.3", ssl.SSLEOFError())
    assert [(r.identity, r.address, r.event) for r in refusals] == [
        (TLS_UNIDENTIFIED, "10.0.0.1", INVALID_TLS_VERSION)
    ]
    cert = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cert.verify_message = "certificate has expired"
    assert tls_failure_event(cert) == (
        INVALID_CERTIFICATE,
        "TLS handshake failed: client certificate: certificate has expired",
    )
