"""Ports for the embedded system and the tests: anywhere by default, or from a range of one's own."""

from __future__ import annotations

import socket

import pytest

from kpi_launcher import embedded


@pytest.fixture
def ten_ports(monkeypatch: pytest.MonkeyPatch) -> range:
    """Below every test worker's range (tests/conftest.py: from 20000): a port a system of another
    test used a moment ago can still be held by its closing connections, and would be skipped."""
    monkeypatch.setenv(embedded.FREE_PORTS, "19990-19999")
    monkeypatch.setattr(embedded, "_handed_out", [])
    return range(19990, 20000)


def test_a_range_hands_out_each_of_its_ports_once_before_any_again(ten_ports: range) -> None:
    first_round = [embedded.free_port() for _ in ten_ports]
    assert sorted(first_round) == list(ten_ports)
    assert embedded.free_port() in ten_ports


def test_a_port_something_listens_on_is_skipped(ten_ports: range) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 19995))
        taken.listen()
        picked = [embedded.free_port() for _ in range(9)]
    assert 19995 not in picked
    assert sorted(picked) == [port for port in ten_ports if port != 19995]


def test_without_a_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(embedded.FREE_PORTS, raising=False)
    port = embedded.free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # it was free
