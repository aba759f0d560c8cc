from hypothesis import given
from hypothesis import strategies as st

from streams.subjects import PREFIX, station_of, subject, token


@given(st.text(min_size=1, max_size=60))
def test_token_round_trips_and_is_one_safe_subject_token(station_id: str) -> None:
    encoded = token(station_id)
    assert station_of(encoded) == station_id
    assert not any(c in encoded for c in ".*> \t\r\n")
    assert all(0x21 <= ord(c) < 0x7F for c in encoded)


def test_readable_identities_stay_readable() -> None:
    assert subject("CP-001_a") == f"{PREFIX}.CP-001_a"
    assert token("RDAM 123") == "RDAM=20123"
    assert token("a.b") == "a=2Eb"
