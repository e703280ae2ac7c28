"""A TCP forwarder in front of PostgreSQL that a test can cut and restore.

Each worker under test gets its own proxy, so the test knows exactly which
server connections are that worker's: PostgreSQL sees the proxy's outgoing
ports as ``client_port``. That is how connections are terminated without
touching anyone else's sessions on a shared server.
"""

import logging
import socket
import struct
import threading

from psycopg.conninfo import conninfo_to_dict, make_conninfo

log = logging.getLogger(__name__)

# Bytes moved per recv(); PostgreSQL messages are small, COPY chunks larger.
PUMP_CHUNK = 64 * 1024


class _Pair:
    """One client connection and its upstream connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client = client
        self.upstream = upstream
        self.upstream_port = upstream.getsockname()[1]
        self._closed = threading.Event()

    def reset(self) -> None:
        """Close both sides with RST, as a network fault would."""
        if self._closed.is_set():
            return
        self._closed.set()
        for sock in (self.client, self.upstream):
            try:
                # Linger 0: close() sends RST instead of a polite FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()


class PgProxy:
    """Forwards 127.0.0.1:<port> to the server of ``pg_url``.

    ``cut()`` resets every open connection and refuses new ones (accepted,
    then reset at once) until ``restore()``. ``stall()`` holds every byte in
    both directions until ``resume()``: a partition that heals before TCP
    gives up, where calls hang instead of failing.
    """

    def __init__(self, pg_url: str):
        params = conninfo_to_dict(pg_url)
        host = params.get("host") or "127.0.0.1"
        if host.startswith("/"):
            raise ValueError("PgProxy needs PostgreSQL over TCP, not a socket")
        self._target = (host, int(params.get("port") or 5432))
        self._pg_url = pg_url
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._closing = threading.Event()
        self.accepted = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._accept_loop,
                                        name=f"pg-proxy-{self.port}",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``pg_url`` pointed at this proxy."""
        return make_conninfo(self._pg_url, host="127.0.0.1", port=self.port)

    def upstream_ports(self) -> list[int]:
        with self._lock:
            self._pairs = [p for p in self._pairs if not p.closed]
            return [p.upstream_port for p in self._pairs]

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.reset()
        log.info("proxy %d cut: %d connections reset", self.port, len(pairs))

    def restore(self) -> None:
        self._cut.clear()
        log.info("proxy %d restored", self.port)

    def stall(self) -> None:
        self._flowing.clear()
        log.info("proxy %d stalled", self.port)

    def resume(self) -> None:
        self._flowing.set()
        log.info("proxy %d resumed", self.port)

    def close(self) -> None:
        self._closing.set()
        self._flowing.set()
        self._listener.close()
        self.cut()

    # -- forwarding --------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            if self._cut.is_set():
                self.refused += 1
                _Pair(client, socket.socket()).reset()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
            self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst),
                                 daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket,
              dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(PUMP_CHUNK)
                if not data:
                    break
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        # One side ended: end the other too, as a real connection would.
        pair.reset()
