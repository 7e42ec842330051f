#!/usr/bin/env python3
"""Measures how much of its stack a wschat client-reader thread touches.

Starts the given wschat binary, opens connections that exercise every path a reader takes
(page download kept open? no: chat join, messages, commands, ping, echo of a large message,
scream, an error close), keeps them open, then reads /proc/PID/smaps: each reader's stack is an
anonymous mapping of CLIENT_STACK_BYTES (128 KiB) and its Rss is what the thread touched
(including glibc's thread descriptor and TLS at the top of the mapping).

Usage: python3 bench/thread_stacks.py target/release/wschat
"""
import base64, os, re, socket, subprocess, sys, time

STACK_KIB = 128

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def frame(opcode, payload, fin=True):
    key = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126: head += bytes([0x80 | n])
    elif n < 65536: head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else: head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

def upgrade(port, path):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n").encode())
    s.settimeout(2)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    return s

def main():
    binary = sys.argv[1]
    port = free_port()
    server = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--log-level", "debug"],
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    keep = []
    try:
        for i in range(10):
            s = upgrade(port, f"/?name=user{i}&room=r{i % 3}")
            for text in [b"hello", "ünïcode ✓".encode(), b"/me waves", b"/who", b"/help",
                         b"/nick n%d" % i, b"/msg user0 psst", b"/bogus", b"x" * 4000]:
                s.sendall(frame(0x1, text))
            s.sendall(frame(0x9, b"ping"))
            keep.append(s)
        e = upgrade(port, "/echo")
        e.sendall(frame(0x1, b"a" * 100000, fin=False) + frame(0x0, b"b" * 1000))
        keep.append(e)
        sc = upgrade(port, "/scream")
        sc.sendall(frame(0x1, "straße".encode()))
        keep.append(sc)
        time.sleep(1.0)
        rss = []
        lines = open(f"/proc/{server.pid}/smaps").read().splitlines()
        size = None
        for line in lines:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                size = (hi - lo) // 1024
            elif line.startswith("Rss:") and size == STACK_KIB:
                rss.append(int(line.split()[1]))
        rss.sort()
        print(f"{len(rss)} reader stacks of {STACK_KIB} KiB: touched KiB min {rss[0]}, "
              f"median {rss[len(rss)//2]}, max {rss[-1]}")
    finally:
        for s in keep: s.close()
        server.terminate(); server.wait()

main()
