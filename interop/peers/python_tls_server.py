"""Python `websockets` server over TLS for the interop tests:
python_tls_server.py CERT_PEM KEY_PEM

Listens on 127.0.0.1 on a free port with the given certificate chain and key, offering
ALPN http/1.1, and prints {"event":"listening","port":N}. For one connection: sends
"alpn=<ALPN> sni=<server name>", echoes every message, prints
{"event":"closed","code":C,"reason":R} when the client closes, then {"event":"done"}
and exits.
"""

import asyncio
import ssl
import sys

from websockets.exceptions import ConnectionClosed

import python_scenario as scenario

NAME = "python TLS server"


async def main(cert, key):
    server_names = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    context.sni_callback = lambda ssl_object, name, ctx: server_names.append(name)
    finished = asyncio.get_running_loop().create_future()

    async def handler(ws):
        ssl_object = ws.transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol()
        sni = server_names[-1] if server_names else None
        await ws.send(f"alpn={alpn} sni={sni}")
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        scenario.emit_closed(_closed(ws))
        if not finished.done():
            finished.set_result(None)

    await scenario.serve_until(finished, handler, ssl=context)


def _closed(ws):
    """An object with the close frame received, as emit_closed expects."""

    class Closed:
        rcvd = ws.protocol.close_rcvd

    return Closed


if __name__ == "__main__":
    scenario.run(main(sys.argv[1], sys.argv[2]))
