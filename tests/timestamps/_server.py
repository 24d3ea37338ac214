"""Test fixture: a paced chunked-HTTP line server in its own process (own CPU, own GIL).

Usage: python _server.py [--tls CERT KEY]. Prints its port, then after each response one JSON
line {"sent": [[t_before, t_after], ...]} with perf_counter (CLOCK_MONOTONIC) times around the
send of each line. The request body is JSON: {"gaps_ms": [g0, g1, ...]}: line k is sent g_k ms
after line k-1 (g0 after the headers). Raw sockets, so the send times are exact; one thread per connection (keep-alive).
"""

import json
import socket
import ssl
import sys
import threading
import time

LOCK = threading.Lock()


def serve(conn):
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            d = conn.recv(65536)
            if not d:
                return
            buf += d
        head, _, buf = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(buf) < length:
            buf += conn.recv(65536)
        body, buf = buf[:length], buf[length:]
        gaps = json.loads(body or b"{}").get("gaps_ms", [])
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        sent = []
        due = time.perf_counter()
        for k, gap in enumerate(gaps):
            due += gap / 1000.0
            while True:
                left = due - time.perf_counter()
                if left <= 0:
                    break
                time.sleep(left if left > 0.001 else 0)
            data = b'data: {"k": %d}\n\n' % k
            a = time.perf_counter()
            conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            b = time.perf_counter()
            sent.append([a, b])
        conn.sendall(b"0\r\n\r\n")
        with LOCK:
            print(json.dumps({"sent": sent}), flush=True)


def main():
    ctx = None
    if len(sys.argv) > 1 and sys.argv[1] == "--tls":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print(srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(conn, ctx), daemon=True).start()


def handle(conn, ctx):
    try:
        if ctx is not None:
            conn = ctx.wrap_socket(conn, server_side=True)
        serve(conn)
    except (OSError, ValueError):
        pass
    finally:
        conn.close()


if __name__ == "__main__":
    main()
