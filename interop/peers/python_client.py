"""Python `websockets` client for the interop tests: python_client.py ws://127.0.0.1:PORT

Connects to PORT/main then PORT/sockjet-closes and plays python_scenario.py on each;
prints {"event":"done"} at the end.
"""

import sys

from websockets.asyncio.client import connect

import python_scenario as scenario

NAME = "python client"


async def main(base):
    for path in ("/main", "/sockjet-closes"):
        async with connect(
            base + path,
            compression=None,  # uncompressed; python_deflate.py covers permessage-deflate
            max_size=scenario.MAX_SIZE,
            ping_interval=None,
            open_timeout=scenario.TIMEOUT,
            close_timeout=scenario.TIMEOUT,
            proxy=None,  # never a proxy for 127.0.0.1, whatever the environment says
        ) as ws:
            await scenario.play(ws, path, NAME)
    scenario.emit(event="done")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        scenario.fail("usage: python_client.py ws://127.0.0.1:PORT")
    scenario.run(main(sys.argv[1]))
