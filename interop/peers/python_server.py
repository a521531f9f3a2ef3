"""Python `websockets` server for the interop tests: python_server.py

Listens on 127.0.0.1 on a free port, prints {"event":"listening","port":N}, plays
python_scenario.py on each connection (by path: /main, then /sockjet-closes), prints
{"event":"done"} and exits after the /sockjet-closes connection.
"""

import asyncio

import python_scenario as scenario

NAME = "python server"


async def main():
    finished = asyncio.get_running_loop().create_future()

    async def handler(ws):
        path = ws.request.path
        try:
            await scenario.play(ws, path, NAME)
        except Exception as exc:  # noqa: BLE001 - hand it to main() to fail loudly
            if not finished.done():
                finished.set_exception(exc)
            raise
        if path == "/sockjet-closes" and not finished.done():
            finished.set_result(None)

    # Uncompressed; python_deflate.py covers permessage-deflate.
    await scenario.serve_until(finished, handler, compression=None)


if __name__ == "__main__":
    scenario.run(main())
