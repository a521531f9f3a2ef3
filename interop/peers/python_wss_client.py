"""Python `websockets` client over TLS: python_wss_client.py wss://127.0.0.1:PORT CA.pem

Trusts only the test CA in CA.pem (made by the Rust test with rcgen) and offers ALPN
h2 and http/1.1. Two connections:

/echo   reports the TLS version and ALPN protocol, sends text, bytes and 1 MiB, reports
        each echo, and closes with 1000.
/stay   reports {"event":"waiting"} and waits: the test shuts `sockjet serve` down, and
        the peer reports the close frame it gets (1001 expected).

Prints {"event":"done"} at the end.
"""

import ssl
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import python_scenario as scenario


def tls_context(ca_file):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def options(context):
    return dict(
        ssl=context,
        compression="deflate",
        max_size=scenario.MAX_SIZE,
        ping_interval=None,
        open_timeout=scenario.TIMEOUT,
        close_timeout=scenario.TIMEOUT,
        proxy=None,  # never a proxy for 127.0.0.1, whatever the environment says
    )


async def main(base, ca_file):
    context = tls_context(ca_file)
    async with connect(base + "/echo", **options(context)) as ws:
        tls = ws.transport.get_extra_info("ssl_object")
        scenario.emit(
            event="open",
            path="/echo",
            alpn=tls.selected_alpn_protocol(),
            tls_version=tls.version(),
        )
        for message in [
            "héllo over wss ✓",
            bytes(range(256)),
            scenario.pattern(scenario.MIB, 31, 7, 251),
        ]:
            await scenario.send(ws, message)
            echo = await scenario.recv(ws)
            if echo != message:
                raise scenario.PeerError(f"echo differs: {echo!r:.100}")
            scenario.emit(**scenario.describe(echo))
        await ws.close(1000, "done")
        scenario.emit_closed(ws.close_exc)

    async with connect(base + "/stay", **options(context)) as ws:
        scenario.emit(event="open", path="/stay")
        scenario.emit(event="waiting")
        try:
            message = await ws.recv()
            raise scenario.PeerError(f"unexpected message {message!r:.100}")
        except ConnectionClosed as exc:
            scenario.emit_closed(exc)
    scenario.emit(event="done")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        scenario.fail("usage: python_wss_client.py wss://127.0.0.1:PORT CA.pem")
    scenario.run(main(sys.argv[1], sys.argv[2]))
