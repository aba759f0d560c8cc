import pytest

from csms.gateway.upgrade import (
    UpgradeRefusedError,
    choose_subprotocol,
    identity_from_path,
    session_key,
)


@pytest.mark.parametrize(
    ("path", "identity"),
    [
        ("/ocpp/CP1", "CP1"),
        ("/CP1", "CP1"),
        ("/ocpp/CP1/", "CP1"),
        ("/ocpp/RDAM%20123", "RDAM 123"),
    ],
)
def test_identity_from_the_url(path: str, identity: str) -> None:
    assert identity_from_path(path) == identity


@pytest.mark.parametrize("path", ["/", "/ocpp/", "/a/b/c", "/ocpp/%00x"])
def test_paths_without_an_identity_are_refused(path: str) -> None:
    with pytest.raises(UpgradeRefusedError) as refused:
        identity_from_path(path)
    assert refused.value.status == 404


def test_2x_identities_are_case_insensitive_identifier_strings() -> None:
    assert session_key("CS-One", "2.0.1") == "cs-one"
    assert session_key("CS-One", "1.6") == "CS-One"
    for bad in ["x" * 49, "has space", "üml"]:
        with pytest.raises(UpgradeRefusedError):
            session_key(bad, "2.1")


def test_first_supported_subprotocol_of_the_stations_list_wins() -> None:
    supported = ["1.6", "2.0.1", "2.1"]
    assert choose_subprotocol("ocpp0.1, ocpp2.0.1,ocpp1.6", supported) == "ocpp2.0.1"
    with pytest.raises(UpgradeRefusedError):
        choose_subprotocol("ocpp1.6", ["2.1"])
    with pytest.raises(UpgradeRefusedError) as refused:
        choose_subprotocol("ocpp0.1", supported)
    assert refused.value.status == 400
    with pytest.raises(UpgradeRefusedError):
        choose_subprotocol(None, supported)
