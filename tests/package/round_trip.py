#!/usr/bin/env python3
"""A chat round trip against a wschat on 127.0.0.1:PORT, with nothing but the standard
library (the packaged binary is checked with no Rust test harness around it): ada and bob
join room "pkg", ada says a line, bob must receive it from ada. Exits 0 on success.

Usage: round_trip.py PORT"""
import base64
import json
import os
import socket
import sys

TIMEOUT_SECS = 30  # generous: the machine is shared


def join(port, name):
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECS)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /?name={name}&room=pkg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            sys.exit(f"{name}: the server closed during the handshake: {head!r}")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit(f"{name}: no upgrade: {head!r}")
    return sock


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("the server closed the connection")
        data += chunk
    return data


def read_text(sock):
    """The next text frame's payload (server frames are unmasked); skips pings."""
    while True:
        first, second = recv_exact(sock, 2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(recv_exact(sock, 2), "big")
        elif length == 127:
            length = int.from_bytes(recv_exact(sock, 8), "big")
        payload = recv_exact(sock, length)
        if first & 0x0F == 0x1:
            return payload.decode()


def send_text(sock, text):
    payload = text.encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)


def main():
    port = int(sys.argv[1])
    ada = join(port, "ada")
    bob = join(port, "bob")
    # Once bob has his welcome he is in the room, and hears what ada says next.
    while json.loads(read_text(bob)).get("event") != "welcome":
        pass
    send_text(ada, "hello from the package")
    for _ in range(50):
        event = json.loads(read_text(bob))
        if event.get("event") == "message":
            if (event.get("name"), event.get("text")) != ("ada", "hello from the package"):
                sys.exit(f"not ada's line: {event}")
            print(f"round trip ok: {event['info']}")
            return
    sys.exit("bob never received ada's line")


if __name__ == "__main__":
    main()
