#!/usr/bin/env python3
"""Long-polling benchmark: 100 socket.io-client v4 clients from Node at scenario 1's rate
(10 senders, 50 msg/s each, 10 s), over the WebSocket transport and over long-polling with
kept-alive and with new connections, alternating in one run, each against a fresh server.

    python3 bench/polling/run.py [--server target/release/wschat] [--reps 3] [--workers 4]
                                 [--duration 10] [--modes websocket,polling-keepalive,polling-close]

Ports from BENCH_PORT_BASE (default 27000). Prints one JSON line per run and a markdown table
of medians (BENCHMARKS.md, "Long-polling"). Run `npm ci` in bench/polling first.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def one_run(args, mode, port):
    log = open(os.path.join(args.logs, f"wschat.{port}.log"), "w")
    server = subprocess.Popen([args.server, "--bind", "127.0.0.1", "--port", str(port),
                               "--rate-limit", "0", "--log-level", "warn"],
                              stdout=log, stderr=log)
    time.sleep(0.5)
    start_at = int(time.time() * 1000) + 8000
    tmp = tempfile.mkdtemp()
    workers = []
    for w in range(args.workers):
        # The room and the senders split as evenly as they go.
        per = args.clients // args.workers + (w < args.clients % args.workers)
        senders = args.senders // args.workers + (w < args.senders % args.workers)
        dump = os.path.join(tmp, f"{w}.json")
        cmd = ["node", os.path.join(HERE, "load.mjs"), "--url", f"http://127.0.0.1:{port}",
               "--pid", str(server.pid), "--mode", mode, "-n", str(per), "-k", str(senders),
               "-r", str(args.rate), "-d", str(args.duration), "--start-at", str(start_at),
               "--room", str(args.clients), "--dump", dump]
        workers.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True), dump))
    time.sleep(max(0, start_at / 1000 - time.time()))
    cpu0 = cpu_ticks(server.pid)
    time.sleep(args.duration + 2)
    cpu1 = cpu_ticks(server.pid)
    outs, lat = [], []
    for proc, dump in workers:
        out, _ = proc.communicate(timeout=120)
        outs.append(json.loads(out.strip().splitlines()[-1]))
        with open(dump) as f:
            lat.extend(json.load(f))
    server.terminate()
    server.wait()
    sent = sum(o["sent"] for o in outs)
    delivered = sum(o["delivered"] for o in outs)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
    cpu_us = (cpu1 - cpu0) / CLK_TCK * 1e6
    return {"mode": mode, "clients": args.clients, "workers": args.workers, "sent": sent,
            "expected": sent * args.clients, "delivered": delivered,
            "lost": sent * args.clients - delivered, "p50_ms": q(0.5), "p90_ms": q(0.9),
            "p99_ms": q(0.99), "server_cpu_us_per_delivery": round(cpu_us / max(1, delivered), 2),
            "gen_cpu_pct_max": max(o["gen_cpu_pct"] for o in outs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="target/release/wschat")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--senders", type=int, default=10)
    ap.add_argument("--rate", type=int, default=50)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--modes", default="websocket,polling-keepalive,polling-close")
    ap.add_argument("--logs", default=tempfile.gettempdir(), help="where the servers' logs go")
    args = ap.parse_args()
    port = int(os.environ.get("BENCH_PORT_BASE", "27000"))
    runs = []
    for rep in range(args.reps):
        for mode in args.modes.split(","):
            port += 1
            r = one_run(args, mode, port)
            r["rep"] = rep + 1
            print(json.dumps(r), flush=True)
            runs.append(r)
    print("\n| transport | lost | p50 ms | p99 ms | server CPU µs/delivery | × WebSocket | generator CPU max |")
    print("|---|---|---|---|---|---|---|")
    med = lambda mode, key: statistics.median(r[key] for r in runs if r["mode"] == mode)
    ws = med("websocket", "server_cpu_us_per_delivery") if "websocket" in args.modes else None
    for mode in args.modes.split(","):
        cpu = med(mode, "server_cpu_us_per_delivery")
        ratio = f"{cpu / ws:.2f}" if ws else "—"
        lost = sum(r["lost"] for r in runs if r["mode"] == mode)
        print(f"| {mode} | {lost} | {med(mode, 'p50_ms'):.1f} | {med(mode, 'p99_ms'):.1f} | "
              f"{cpu:.2f} | {ratio} | {med(mode, 'gen_cpu_pct_max'):.0f} % |")


if __name__ == "__main__":
    sys.exit(main())
