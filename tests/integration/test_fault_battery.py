"""The CI-sized fault battery (``make faults`` is the full one): 30 stations against real
nats-server and ``csms serve`` processes, a SIGKILL of each, and the checker's invariants; then
the canary, an unsafe run (a simulated OS crash rolls the store back past acknowledged writes)
that the checker must report as losing data, or it would be blind.

The first test runs the projector too (``csms projections run``) and checks the projections
after it caught up: about 22 s here, longer (up to the consumer's 60 s AckWait) when the NATS
kill swallowed a fetch whose messages must be redelivered. The canary checks the stream only.
"""

from __future__ import annotations

from pathlib import Path

from tests.faults.battery import Battery, BatteryConfig, summary


async def test_kill_9_of_nats_and_of_the_gateway_lose_nothing_answered(tmp_path: Path) -> None:
    config = BatteryConfig(
        out_dir=tmp_path,
        stations=30,
        duration_s=16,
        seed=7,
        faults=("nats-kill", "gateway-kill"),
        heal_timeout_s=30,
    )
    report = await Battery(config).run()
    print(summary(report))
    assert [f["name"] for f in report["faults"]] in (
        ["nats-kill", "gateway-kill"],
        ["gateway-kill", "nats-kill"],
    )
    assert report["restarts"] == {"gateway": 1, "projector": 0, "nats": 1}
    assert report["counts"]["answered"] > 200, "too little traffic to mean anything"
    invariants = report["invariants"]
    assert invariants["I1_acknowledged_is_durable"]["lost_in_stream"] == 0
    assert invariants["I1_acknowledged_is_durable"]["lost_in_projection"] == 0
    assert invariants["I1_acknowledged_is_durable"]["pass"], invariants[
        "I1_acknowledged_is_durable"
    ]
    assert invariants["I2_no_duplicates"]["pass"], invariants["I2_no_duplicates"]
    assert invariants["I3_no_answer_before_puback"]["pass"], invariants[
        "I3_no_answer_before_puback"
    ]
    assert invariants["I4_no_phantoms"]["pass"], invariants["I4_no_phantoms"]
    assert invariants["I5_liveness"]["fraction"] >= 0.99
    assert invariants["I5_liveness"]["projection_caught_up_s"] is not None
    assert invariants["I6_order"]["pass"], invariants["I6_order"]
    assert report["pass"], summary(report)


async def test_canary_the_checker_sees_acknowledged_writes_vanish(tmp_path: Path) -> None:
    config = BatteryConfig(
        out_dir=tmp_path,
        stations=20,
        duration_s=8,
        seed=11,
        faults=("canary-rollback",),
        heal_timeout_s=30,
        check_projections=False,
    )
    report = await Battery(config).run()
    print(summary(report))
    (fault,) = report["faults"]
    assert fault["detail"]["answers_after_snapshot"] > 0, "no traffic in the loss window"
    lost = report["invariants"]["I1_acknowledged_is_durable"]["lost_in_stream"]
    assert lost > 0, "the checker is blind: a rolled-back store lost nothing?"
    assert not report["pass"]
