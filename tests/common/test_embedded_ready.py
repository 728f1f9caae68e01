"""`EmbeddedKafka.start()` returns only once the broker serves: an open port is not enough.

CI once saw a restarted broker accept a client's bootstrap connection and close it at once; aiokafka
does not retry its bootstrap, so the client failed. start() now waits for a Metadata response
through the gateway, and says clearly when none comes."""
import socket
import threading

import pytest

from services.common.embedded import EmbeddedKafka, kafka_answers, wait_kafka_ready

pytestmark = pytest.mark.integration


class AcceptAndClose:
    """A listener that accepts every connection and closes it unanswered: a port that is open but
    serves nothing."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self.sock.close()


def test_an_open_port_that_closes_connections_is_not_ready(tmp_path):
    server = AcceptAndClose()
    log = tmp_path / "broker.log"
    log.write_text("starting\nloading snapshot\n")
    try:
        assert not kafka_answers(server.port)
        with pytest.raises(TimeoutError, match="did not answer a Metadata request") as err:
            wait_kafka_ready(server.port, timeout=1.0, what="test broker", log_path=log)
        assert "loading snapshot" in str(err.value)   # the log's tail says why
        assert server.accepted >= 2                     # it kept trying until the deadline
    finally:
        server.close()


def test_a_restarted_broker_answers_metadata_through_its_gateway_when_start_returns(tmp_path):
    broker = EmbeddedKafka(tmp_path / "kafka").start()
    try:
        assert kafka_answers(broker.port) and kafka_answers(broker.broker_port)
        assert broker.stop()
        assert not kafka_answers(broker.port)
        broker = EmbeddedKafka(tmp_path / "kafka", port=broker.port).start()
        assert broker.broker_port != broker.port
        assert kafka_answers(broker.port)
    finally:
        broker.stop()
