"""net/shared_counts.py: the connection caps of a server with several workers count every
worker's connections (two workers' views of one file, in one process)."""

from __future__ import annotations

from mailcove.net.shared_counts import SharedCounts


def test_the_per_ip_and_total_limits_span_the_workers(tmp_path):
    w0, w1 = SharedCounts(tmp_path, 0, 2), SharedCounts(tmp_path, 1, 2)
    a, b = w0.counter("imap", 5, 2), w1.counter("imap", 5, 2)
    assert a.try_add("192.0.2.1") and b.try_add("192.0.2.1")
    assert not a.try_add("192.0.2.1") and not b.try_add("192.0.2.1")  # two in all, one in each
    assert "2 from 192.0.2.1" in a.describe("192.0.2.1")
    # Another protocol and another client are counted apart; IPv6 per /64.
    assert w0.counter("pop3", 5, 2).try_add("192.0.2.1")
    assert b.try_add("2001:db8::1") and a.try_add("2001:db8::2")
    assert not b.try_add("2001:db8::3")
    assert a.try_add("192.0.2.9")  # 5 IMAP connections in total now
    assert not b.try_add("192.0.2.10")
    b.remove("192.0.2.1")
    assert a.try_add("192.0.2.1")


def test_a_restarted_worker_forgets_its_dead_predecessors_connections(tmp_path):
    w0, w1 = SharedCounts(tmp_path, 0, 2), SharedCounts(tmp_path, 1, 2)
    a = w0.counter("smtp", 0, 3)
    b = w1.counter("smtp", 0, 3)
    for _ in range(3):
        assert b.try_add("198.51.100.7")
    assert not a.try_add("198.51.100.7")
    w1.close()  # worker 1 died with its connections; its successor starts with a clean region
    SharedCounts(tmp_path, 1, 2)
    assert a.try_add("198.51.100.7")


def test_many_clients_fit(tmp_path):
    counts = SharedCounts(tmp_path, 0, 1)
    c = counts.counter("imap", 0, 1)
    clients = [f"10.{i // 250}.{i % 250}.1" for i in range(2000)]
    assert all(c.try_add(ip) for ip in clients)
    for ip in clients:
        c.remove(ip)
    assert all(c.try_add(ip) for ip in clients)  # freed slots are reused
