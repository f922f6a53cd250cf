"""An asyncio (epoll) TCP echo server: prints its port, then echoes every
connection's bytes upper-cased until the peer closes. Each connection
that ends with an error (a reset) is counted on stderr.

    python3 examples/echo_server.py [PORT]     # 0 or nothing: any free port
"""

import asyncio
import sys


async def handle(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
    except (ConnectionResetError, BrokenPipeError) as e:
        print(f"connection ended: {e.__class__.__name__}", file=sys.stderr, flush=True)
    finally:
        writer.close()


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
