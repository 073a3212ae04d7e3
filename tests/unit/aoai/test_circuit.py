from shared.aoai._circuit import Circuit


def test_opens_after_threshold_and_half_open_lets_exactly_one_through():
    circuit = Circuit(threshold=2, cooloff_s=10.0)
    assert not circuit.record_failure(0.0)
    assert circuit.record_failure(1.0)
    assert circuit.state(5.0) == "open" and not circuit.acquire(5.0)
    assert circuit.state(11.0) == "half_open"
    assert circuit.acquire(11.0)
    assert not circuit.acquire(11.0) and not circuit.available(11.0)  # the probe slot is taken
    assert circuit.record_success(12.0)
    assert circuit.state(12.0) == "closed" and circuit.acquire(12.0)


def test_failed_probe_reopens_for_another_cooloff():
    circuit = Circuit(threshold=3, cooloff_s=10.0)
    circuit.record_failure(0.0, immediate=True)  # a timeout opens at once
    assert circuit.state(0.0) == "open"
    assert circuit.acquire(10.0)
    assert circuit.record_failure(10.5)
    assert circuit.open_until == 20.5 and not circuit.acquire(15.0)


def test_released_probe_frees_the_slot():
    circuit = Circuit(threshold=1, cooloff_s=1.0)
    circuit.record_failure(0.0)
    assert circuit.acquire(2.0)
    circuit.release()
    assert circuit.acquire(2.0)


def test_success_resets_the_count():
    circuit = Circuit(threshold=2, cooloff_s=1.0)
    circuit.record_failure(0.0)
    circuit.record_success(0.1)
    assert not circuit.record_failure(0.2)
    assert circuit.state(0.2) == "closed"


def test_remote_verdict_is_adopted():
    circuit = Circuit(threshold=2, cooloff_s=1.0)
    circuit.force(100.0, 50.0)
    assert circuit.state(60.0) == "open"
    circuit.force(0.0, 70.0)
    assert circuit.state(71.0) == "closed"


def test_a_late_answer_to_a_request_sent_before_opening_does_not_close_it():
    """Issue 10 finding 7: only the half-open probe (sent after opening) closes the circuit."""
    circuit = Circuit(threshold=1, cooloff_s=10.0)
    assert circuit.record_failure(5.0, sent_at=4.0)  # opens at 5
    assert not circuit.record_success(6.0, sent_at=1.0)  # a slow 429/200 sent at 1
    assert circuit.state(6.0) == "open" and circuit.open_until == 15.0
    assert circuit.acquire(15.0)  # the probe, sent after opening
    assert circuit.record_success(15.5, sent_at=15.0)
    assert circuit.state(15.5) == "closed"


def test_late_failures_do_not_extend_open_until():
    circuit = Circuit(threshold=1, cooloff_s=10.0)
    assert circuit.record_failure(5.0, sent_at=4.5)
    for t in (6.0, 9.0, 14.0):
        assert not circuit.record_failure(t, sent_at=4.0)
    assert circuit.open_until == 15.0 and not circuit.probing
    assert circuit.acquire(15.0)
    assert not circuit.record_failure(15.1, sent_at=3.0)  # a straggler does not end the probe
    assert circuit.probing
    assert circuit.record_failure(16.0, sent_at=15.0)  # the probe's own failure reopens
    assert circuit.open_until == 26.0
