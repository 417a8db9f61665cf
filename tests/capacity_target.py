"""A target whose capacity is known by construction, for testing ``stressbed capacity``.

It serves at most C requests at a time, each taking S ms (paced per slot, so that a late
wake-up on a busy machine does not lower the rate), so its capacity is C / S requests per
second; the rest wait their turn (``--mode queue``), or, with ``--mode reject``, wait in a
queue of at most ``--queue`` requests and get a 503 at once when it is full (a server that
sheds load: the short queue absorbs the bursts a busy load generator sends, a rate over C / S
fills it). Run it as ``python -m tests.capacity_target --concurrency 4 --service-ms 20``: it
prints its port on stdout and serves on 127.0.0.1 until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys


async def _serve(concurrency: int, service_s: float, mode: str, queue: int, port: int) -> None:
    loop = asyncio.get_running_loop()
    # Each slot keeps its own clock: a request it takes ends S after the later of now and the
    # end of the slot's last one. A wake-up that comes late on a busy machine is made up by
    # the next request's, so the slots serve C/S per second as long as work waits for them.
    free_at: asyncio.Queue[float] = asyncio.Queue()
    for _ in range(concurrency):
        free_at.put_nowait(0.0)
    waiting = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal waiting
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length:
                    await reader.readexactly(length)
                if mode == "reject" and free_at.empty() and waiting >= queue:
                    status, body = b"503 Service Unavailable", b"busy"
                else:
                    waiting += 1
                    try:
                        slot_free = await free_at.get()
                    finally:
                        waiting -= 1
                    done = max(loop.time(), slot_free) + service_s
                    try:
                        await asyncio.sleep(max(0.0, done - loop.time()))
                    finally:
                        free_at.put_nowait(done)
                    status, body = b"200 OK", b"ok"
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--service-ms", type=float, default=20.0)
    parser.add_argument("--mode", choices=("queue", "reject"), default="queue")
    parser.add_argument("--queue", type=int, default=0, help="--mode reject: requests waiting")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    # It stands for a server with CPU of its own: ahead of the load generator and whatever
    # else this shared machine runs, where it may be (root may raise a priority).
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -5)
    try:
        asyncio.run(
            _serve(args.concurrency, args.service_ms / 1000, args.mode, args.queue, args.port)
        )
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
