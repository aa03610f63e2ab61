"""A TCP proxy on loopback that can stop forwarding: a blackholed network path.

Paused, it keeps every socket open and accepts new connections, but moves no byte in
either direction, as a network that drops packets does (the peers see no reset and no
close). Resumed, what was held is delivered, as retransmission after a healed
partition would.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

_CHUNK = 64 * 1024
_POLL_SECONDS = 0.1


class BlackholeProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``; ``pause`` holds every byte."""

    def __init__(self, target: int) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def pause(self) -> None:
        """Stop moving bytes (sockets stay open)."""
        self._flowing.clear()

    def resume(self) -> None:
        """Move bytes again, starting with what was held."""
        self._flowing.set()

    def close(self) -> None:
        """Close every connection and the listening socket."""
        with self._lock:
            self._closed.set()
        self._flowing.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        if not self._track(client):
            return
        self._flowing.wait()  # a paused path answers no handshake beyond the kernel's
        try:
            upstream = socket.create_connection(("127.0.0.1", self._target))
        except OSError:
            client.close()
            return
        if not self._track(upstream) or self._closed.is_set():
            return
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _track(self, sock: socket.socket) -> bool:
        """Keep ``sock`` to close it with the proxy; closed now if the proxy already is."""
        with self._lock:
            if self._closed.is_set():
                sock.close()
                return False
            self._sockets.append(sock)
            return True

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(source, selectors.EVENT_READ)
            while not self._closed.is_set():
                self._flowing.wait()
                if not selector.select(_POLL_SECONDS):
                    continue
                if not self._flowing.is_set():
                    continue  # paused between the select and the read: leave it queued
                try:
                    data = source.recv(_CHUNK)
                except OSError:
                    data = b""
                if not data:
                    break
                self._flowing.wait()
                try:
                    sink.sendall(data)
                except OSError:
                    break
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
