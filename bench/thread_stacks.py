#!/usr/bin/env python3
"""Measures how much of its stack a wschat client-reader thread keeps resident.

For each kind of client it starts the given wschat binary afresh, opens 10 connections of
that kind, keeps them open, then reads /proc/PID/smaps: each reader's stack is an anonymous
mapping of CLIENT_STACK_BYTES (128 KiB) and its Rss is what the thread touched since its
stack was released after the handshake (including glibc's thread descriptor and TLS at the
top of the mapping). The kinds:
  idle      raw chat clients that joined and said nothing (the memory-per-connection case)
  chat      raw chat clients that used every path: lines, commands, a 4,000-byte line, a ping
  socketio  socket.io clients over a WebSocket (EIO=4) that joined and said a line
  echo      /echo with a fragmented 101,000-byte message, and /scream

Usage: python3 bench/thread_stacks.py ./target/release/wschat [--max-idle-kib N]
With --max-idle-kib, exits 1 when an idle reader keeps more than N KiB (CI uses 8).
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

def idle(port):
    return [upgrade(port, f"/?name=idle{i}") for i in range(10)]

def chat(port):
    keep = []
    for i in range(10):
        s = upgrade(port, f"/?name=user{i}&room=r{i % 3}")
        for text in [b"hello", "ünïcode ✓".encode(), b"/me waves", b"/who", b"/help",
                     b"/nick n%d" % i, b"/msg user0 psst", b"/bogus", b"x" * 4000]:
            s.sendall(frame(0x1, text))
        s.sendall(frame(0x9, b"ping"))
        keep.append(s)
    return keep

def socketio(port):
    keep = []
    for i in range(10):
        s = upgrade(port, "/socket.io/?EIO=4&transport=websocket")
        s.sendall(frame(0x1, b'40{"name":"sio%d"}' % i))
        s.sendall(frame(0x1, b'42["message","hello from socket.io"]'))
        keep.append(s)
    return keep

def echo(port):
    keep = []
    for _ in range(5):
        e = upgrade(port, "/echo")
        e.sendall(frame(0x1, b"a" * 100000, fin=False) + frame(0x0, b"b" * 1000))
        sc = upgrade(port, "/scream")
        sc.sendall(frame(0x1, "straße".encode()))
        keep += [e, sc]
    return keep

def measure(binary, connect):
    """The resident KiB of each reader stack, sorted, with `connect`'s clients open."""
    port = free_port()
    server = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port)],
                              stderr=subprocess.DEVNULL)
    keep = []
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.1)
        keep = connect(port)
        time.sleep(1.0)
        rss, size = [], None
        for line in open(f"/proc/{server.pid}/smaps").read().splitlines():
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                size = (hi - lo) // 1024
            elif line.startswith("Rss:") and size == STACK_KIB:
                rss.append(int(line.split()[1]))
        return sorted(rss)
    finally:
        for s in keep: s.close()
        server.terminate(); server.wait()

def main():
    binary = sys.argv[1]
    max_idle_kib = None
    if "--max-idle-kib" in sys.argv:
        max_idle_kib = int(sys.argv[sys.argv.index("--max-idle-kib") + 1])
    failed = False
    for name, connect in [("idle", idle), ("chat", chat), ("socketio", socketio), ("echo", echo)]:
        rss = measure(binary, connect)
        if not rss:
            print(f"{name}: no reader stack of {STACK_KIB} KiB found"); failed = True; continue
        print(f"{name:9} {len(rss)} reader stacks of {STACK_KIB} KiB: touched KiB "
              f"min {rss[0]}, median {rss[len(rss)//2]}, max {rss[-1]}")
        if name == "idle" and max_idle_kib is not None and rss[-1] > max_idle_kib:
            print(f"FAIL: an idle reader keeps {rss[-1]} KiB of stack, over {max_idle_kib} KiB")
            failed = True
    sys.exit(1 if failed else 0)

main()
