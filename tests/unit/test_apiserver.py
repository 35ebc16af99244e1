"""The API's listening socket: what asyncio makes of the connections it accepts."""

from __future__ import annotations

import asyncio
import socket

from stocksense.apiserver import bind


async def _nodelay_of_an_accepted_connection(listener: socket.socket) -> int:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    try:
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        value = await asyncio.wait_for(accepted, timeout=10)
        writer.close()
        return value
    finally:
        server.close()
        await server.wait_closed()


def test_accepted_connections_send_small_responses_at_once() -> None:
    # Without TCP_NODELAY each keep-alive response after the first waits for a delayed ACK.
    listener = bind("127.0.0.1", 0, what="API", fix="pick another port")
    assert asyncio.run(_nodelay_of_an_accepted_connection(listener)) != 0
