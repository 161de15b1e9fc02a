"""bindings/nats/server.py's choice of ports: the managed nats-server's listeners get
different ports. The kernel may hand out a probed port again once the probe is closed:
among 300 plain probes, a few come back twice (1 to 7 in five tries on this machine),
and once the WebSocket and MQTT listeners got the same port, so nats-server exited."""

from __future__ import annotations

from bindings.nats.server import ClusterListener, MqttListener, NatsServer, free_port, free_ports


def test_free_ports_are_all_different_and_avoid_what_is_taken():
    taken = free_port()
    ports = free_ports(300, avoid={taken})
    assert len(set(ports)) == 300 and taken not in ports


def test_the_servers_listeners_get_different_ports(tmp_path):
    for attempt in range(50):
        server = NatsServer(
            tmp_path / str(attempt),
            ws_port=0,
            cert_file="server.pem",
            key_file="server.key",
            ca_file="ca.pem",
            mqtt=MqttListener("127.0.0.1", 0),
            cluster=ClusterListener("c", "n1", "127.0.0.1", 0, (), "node.pem", "node.key"),
        )
        ports = [server.port, server.ws_port, server.mqtt.port, server.cluster.port]
        assert len(set(ports)) == 4 and all(ports)
