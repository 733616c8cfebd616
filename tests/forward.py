"""TCP forwarders in front of the test PostgreSQL, for faults a real server cannot be
asked to make (a lost reply, a connection that is never answered, an outage)."""

from __future__ import annotations

import socket
import threading


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until either side ends; then shut both down (the
    caller closes them)."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Forwarder:
    """Listens on a free local port; ``url`` is ``dsn`` through it. Each connection it
    accepts goes to ``serve`` (a subclass's; set its own attributes before calling this
    ``__init__``: the accepting thread starts here)."""

    def __init__(self, dsn: str) -> None:
        host_port = dsn.split("@", 1)[1].split("/")[0]
        self.target = ("127.0.0.1", int(host_port.split(":")[1]))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = dsn.replace(host_port, f"127.0.0.1:{self.server.getsockname()[1]}")
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.sockets.append(client)
            self.serve(client)

    def serve(self, client: socket.socket) -> None:
        raise NotImplementedError

    def forward(self, client: socket.socket) -> socket.socket:
        """Pass ``client`` on to PostgreSQL both ways; returns the upstream socket."""
        upstream = socket.create_connection(self.target)
        self.sockets.append(upstream)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()
        return upstream

    def close(self) -> None:
        self.server.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
