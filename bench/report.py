#!/usr/bin/env python3
"""Turns a results folder of bench/run.sh (raw.jsonl) into REPORT.md and the saturation plot.

Usage: bench/report.py RESULTS_DIR

Every figure is the median over the repetitions of the same run. Standard library only;
the plot is drawn by gnuplot when it is installed (saturation.svg and saturation.png).
"""

import json
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PEER_ORDER = ["wschat", "wschat-baseline", "wschat-metrics", "wschat-nometrics", "go-hub",
              "tokio-tungstenite", "node-ws", "nodejs-websocket"]
# Variants of wschat for before/after measurements: in the ratios only when they were run.
WSCHAT_VARIANTS = {"wschat-baseline", "wschat-metrics", "wschat-nometrics"}
P99_LIMIT_US = 100_000


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def passes(d):
    return (d["lost"] <= 0 and d["connect_failures"] == 0 and d["p99_us"] < P99_LIMIT_US
            and d["connected"] > 0)


def fmt(v, digits=0):
    if v is None:
        return "–"
    if digits:
        return f"{float(v):,.{digits}f}"
    return f"{round(v):,}"


def ms(us):
    return "–" if us is None else f"{us / 1000:,.1f}"


def ms2(us):
    return "–" if us is None else f"{us / 1000:,.2f}"


def peers_in(rows):
    seen = {r["peer"] for r in rows}
    return [p for p in PEER_ORDER if p in seen] + sorted(seen - set(PEER_ORDER))


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def by(rows, *keys):
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(k) for k in keys)].append(r)
    return groups


def med(runs, key):
    return median([r.get(key) for r in runs])


def load_table(runs_by_peer, peers):
    header = ["peer", "runs", "deliveries/s", "lost", "p50 ms", "p90 ms", "p99 ms", "max ms",
              "server CPU µs/delivery", "server CPU %", "generator CPU %", "connect failures",
              "clients closed by the server", "load avg"]
    rows = []
    for p in peers:
        runs = runs_by_peer.get(p, [])
        if not runs:
            continue
        rows.append([p, len(runs), fmt(med(runs, "deliveries_per_s")), fmt(med(runs, "lost")),
                     ms(med(runs, "p50_us")), ms(med(runs, "p90_us")), ms(med(runs, "p99_us")),
                     ms(med(runs, "max_us")), fmt(med(runs, "server_cpu_us_per_delivery"), 2),
                     fmt(med(runs, "server_cpu_pct")), fmt(med(runs, "gen_cpu_pct")),
                     fmt(med(runs, "connect_failures")), fmt(median([closed(r) for r in runs])),
                     fmt(med(runs, "loadavg_1m"), 1)])
    return table(header, rows)


def stuck_table(rows6, s1, s2):
    """Scenario 6 next to scenarios 1 and 2: what ten clients that never read cost the rest."""
    header = ["peer", "load", "runs", "p99 ms, 10 stuck clients", "p99 ms, none", "difference ms",
              "p50 ms, 10 stuck", "deliveries/s", "lost", "server RSS at the end MiB"]
    out = []
    for (peer, load), runs in sorted(by(rows6, "peer", "load").items()):
        base = (s1 if load == "1" else s2).get(peer, [])
        with_stuck, without = med(runs, "p99_us"), med(base, "p99_us") if base else None
        diff = (with_stuck - without) if without is not None and with_stuck is not None else None
        rss = med(runs, "server_rss_kib_end")
        out.append([peer, f"scenario {load}", len(runs), ms(with_stuck), ms(without),
                    ms(diff), ms(med(runs, "p50_us")), fmt(med(runs, "deliveries_per_s")),
                    fmt(med(runs, "lost")), fmt(rss / 1024, 1) if rss is not None else "–"])
    return table(header, out)


def closed(r):
    """Connections the server closed or dropped before the drain ended."""
    return r["connected"] - r["open_at_end"] if "open_at_end" in r else None


def saturation(rows):
    """Per peer: the best passing deliveries/s of each repetition, and the sweep medians."""
    best = {}
    sweep = {}
    for (peer,), runs in by(rows, "peer").items():
        per_rep = []
        for (_rep,), rep_runs in by(runs, "rep").items():
            ok = [r for r in rep_runs if passes(r)]
            top = max(ok, key=lambda r: r["deliveries_per_s"]) if ok else None
            per_rep.append(top)
        tops = [t for t in per_rep if t]
        best[peer] = {
            "reps": len(per_rep),
            "deliveries_per_s": median([t["deliveries_per_s"] for t in tops]),
            "p99_us": median([t["p99_us"] for t in tops]),
            "rate": median([t["rate_per_sender"] for t in tops]),
            "gen_cpu_pct": median([t["gen_cpu_pct"] for t in tops]),
            "server_cpu_pct": median([t.get("server_cpu_pct") for t in tops]),
        }
        points = []
        for (offered,), rr in sorted(by(runs, "offered_deliveries_per_s").items()):
            points.append((offered, med(rr, "deliveries_per_s"), med(rr, "p99_us"),
                           med(rr, "lost"), len(rr)))
        sweep[peer] = points
    return best, sweep


def saturation_tables(rows, title_peer="peer"):
    best, sweep = saturation(rows)
    peers = peers_in(rows)
    header = [title_peer, "reps", "deliveries/s (nothing lost, p99 < 100 ms)",
              "p99 ms there", "msgs/s per sender", "server CPU %", "generator CPU %"]
    out = table(header, [[p, best[p]["reps"], fmt(best[p]["deliveries_per_s"]),
                          ms(best[p]["p99_us"]), fmt(best[p]["rate"]),
                          fmt(best[p]["server_cpu_pct"]), fmt(best[p]["gen_cpu_pct"])]
                         for p in peers])
    out += "\nSweep (medians per offered load):\n\n"
    header = ["offered deliveries/s"] + [f"{p}: delivered/s, p99 ms, lost" for p in peers]
    offered = sorted({pt[0] for p in peers for pt in sweep[p]})
    body = []
    for o in offered:
        row = [fmt(o)]
        for p in peers:
            pt = next((x for x in sweep[p] if x[0] == o), None)
            row.append("" if pt is None else f"{fmt(pt[1])}, {ms(pt[2])}, {fmt(pt[3])}")
        body.append(row)
    out += table(header, body)
    return out, best, sweep


def memory_table(rows):
    rss = defaultdict(dict)
    held = defaultdict(dict)
    failures = defaultdict(int)
    for (peer, n), runs in by(rows, "peer", "clients").items():
        rss[peer][n] = med(runs, "server_rss_kib_idle")
        held[peer][n] = median([r.get("open_at_start", r["connected"]) for r in runs])
        failures[peer] += sum(r["connect_failures"] for r in runs)
    counts = sorted({n for p in rss for n in rss[p] if n})
    header = ["peer", "RSS 0 clients MiB"] + [f"RSS {n:,} MiB" for n in counts] + \
             [f"clients held ({n:,})" for n in counts] + \
             [f"KiB per connection held ({n:,})" for n in counts] + ["connect failures"]
    body, per_conn = [], {}
    for p in peers_in(rows):
        base = rss[p].get(0)
        row = [p, fmt(base / 1024 if base else None, 1)]
        row += [fmt(rss[p][n] / 1024 if rss[p].get(n) else None, 1) for n in counts]
        row += [fmt(held[p].get(n)) for n in counts]
        for n in counts:
            ok = base is not None and rss[p].get(n) and held[p].get(n)
            v = (rss[p][n] - base) / held[p][n] if ok else None
            per_conn[(p, n)] = v
            row.append(fmt(v, 1))
        row.append(failures[p])
        body.append(row)
    return table(header, body), per_conn


def storm_table(rows):
    """Scenario 7: every client connects at once; how long until all are in and have heard
    of each other, and what it cost in memory."""
    header = ["peer", "runs", "clients held", "connect failures", "connecting took s",
              "join lines delivered s (settle − 1 s)", "frames received", "peak RSS MiB",
              "RSS after MiB"]
    def mib(runs, key):
        kib = med(runs, key)
        return fmt(kib / 1024 if kib else None, 1)

    body = []
    for p in peers_in(rows):
        runs = [r for r in rows if r["peer"] == p]
        settle = med(runs, "settle_s")
        body.append([p, len(runs), fmt(med(runs, "open_at_start")),
                     sum(r["connect_failures"] for r in runs), fmt(med(runs, "connect_s"), 2),
                     fmt(max(settle - 1, 0) if settle is not None else None, 2),
                     fmt(med(runs, "frames")), mib(runs, "server_hwm_kib"),
                     mib(runs, "server_rss_kib_end")])
    return table(header, body)


def growth_table(rows1, rows5):
    runs = rows1 + rows5
    counts = sorted({r["clients"] for r in runs})
    header = ["peer"] + [f"{n:,} clients: µs/delivery, p99 ms, deliveries/s, lost, clients "
                         "closed by the server" for n in counts]
    body = []
    for p in peers_in(runs):
        row = [p]
        for n in counts:
            rr = [r for r in runs if r["peer"] == p and r["clients"] == n]
            if not rr:
                row.append("")
                continue
            row.append(f"{fmt(med(rr, 'server_cpu_us_per_delivery'), 2)}, "
                       f"{ms(med(rr, 'p99_us'))}, {fmt(med(rr, 'deliveries_per_s'))}, "
                       f"{fmt(med(rr, 'lost'))}, {fmt(median([closed(r) for r in rr]))}")
        body.append(row)
    return table(header, body)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"{r:.3f}×" if r < 0.1 else f"{r:.2f}×"


def ratios(s1, s2, best, per_conn):
    # wschat's variants (an older commit, metrics scraped or off) only when they were run.
    peers = [p for p in PEER_ORDER if p != "wschat" and (p not in WSCHAT_VARIANTS or p in s1)]
    header = ["wschat ÷ peer", "scenario 1 CPU µs/delivery (lower is better)",
              "scenario 2 p99 (lower is better)", "saturation deliveries/s (higher is better)",
              "KiB per idle connection at 5,000 (lower is better)"]
    body = []
    w1 = med(s1.get("wschat", []), "server_cpu_us_per_delivery")
    w2 = med(s2.get("wschat", []), "p99_us")
    ws = best.get("wschat", {}).get("deliveries_per_s")
    wm = per_conn.get(("wschat", 5000))
    for p in peers:
        p2 = ratio(w2, med(s2.get(p, []), "p99_us"))
        lost_clients = median([closed(r) for r in s2.get(p, [])])
        if lost_clients:
            held = median([r["connected"] for r in s2[p]]) - lost_clients
            p2 += f" (peer kept only {fmt(held)} of 1,000 clients)"
        body.append([p, ratio(w1, med(s1.get(p, []), "server_cpu_us_per_delivery")), p2,
                     ratio(ws, best.get(p, {}).get("deliveries_per_s")),
                     ratio(wm, per_conn.get((p, 5000)))])
    return table(header, body)


def plot(out_dir, sweep):
    if not shutil.which("gnuplot") or not sweep:
        return None
    data = out_dir / "saturation.dat"
    peers = [p for p in PEER_ORDER if p in sweep] + sorted(set(sweep) - set(PEER_ORDER))
    with data.open("w") as f:
        for p in peers:
            f.write(f'"{p}"\n')
            for offered, delivered, p99, _lost, _n in sweep[p]:
                f.write(f"{offered} {delivered} {(p99 or 0) / 1000}\n")
            f.write("\n\n")
    script = f"""
set datafile separator whitespace
set multiplot layout 1,2 title "Saturation: 100 clients, 10 senders, 64-byte messages (medians)"
set logscale xy
set grid
set key top left
set xlabel "offered deliveries/s"
set ylabel "delivered/s (during the sending window)"
plot for [i=0:{len(peers) - 1}] "{data}" index i using 1:2 with linespoints title columnheader(1)
set ylabel "p99 latency, ms"
set key bottom right
plot for [i=0:{len(peers) - 1}] "{data}" index i using 1:3 with linespoints title columnheader(1), \\
     100 with lines dashtype 2 lc rgb "gray" title "100 ms"
unset multiplot
"""
    for term, name in [("svg size 1100,450 dynamic", "saturation.svg"),
                       ("pngcairo size 1100,450", "saturation.png")]:
        subprocess.run(["gnuplot"], input=f"set terminal {term}\nset output '{out_dir / name}'\n"
                       + script, text=True, check=False, capture_output=True)
    return "saturation.svg"


def slow_disk_table(rows8):
    """Scenario 8: scenario 1 with a history file, on the real disk and on a slowed one."""
    header = ["peer", "disk", "runs", "deliveries/s", "lost", "p50 ms", "p99 ms", "max ms",
              "lines sent", "history file lines (after a clean stop)"]
    out = []
    for peer in peers_in(rows8):
        for disk in ["fast", "slow"]:
            runs = [r for r in rows8 if r["peer"] == peer and r.get("disk") == disk]
            if runs:
                out.append([peer, disk, len(runs), fmt(med(runs, "deliveries_per_s")),
                            fmt(med(runs, "lost")), ms2(med(runs, "p50_us")),
                            ms2(med(runs, "p99_us")), ms2(med(runs, "max_us")),
                            fmt(med(runs, "sent")), fmt(med(runs, "history_file_lines"))])
    return table(header, out)


def main():
    out_dir = Path(sys.argv[1])
    rows = [json.loads(line) for line in (out_dir / "raw.jsonl").read_text().splitlines()
            if line.strip()]
    scen = by(rows, "scenario")
    get = lambda s: scen.get((s,), [])
    md = ["# wschat benchmark report\n",
          f"Results folder: `{out_dir}`; {len(rows)} runs. Every figure is the median over "
          "the repetitions (`runs`/`reps`). Latency: from the send time written in the message "
          "to its delivery at each client; 'lost' counts deliveries still missing after the "
          "drain period.\n"]
    machine = out_dir / "machine.txt"
    if machine.exists():
        md.append("## Machine\n\n```\n" + machine.read_text().strip() + "\n```\n")
    best, sweep, per_conn = {}, {}, {}
    s1 = {p: r for (p,), r in by(get("1"), "peer").items()}
    s2 = {p: r for (p,), r in by(get("2"), "peer").items()}
    if get("gen"):
        text, _, _ = saturation_tables(get("gen"), "server")
        md.append("## Generator saturation (against `wschat-bench sink`)\n\n" + text)
    if get("1"):
        md.append("## Scenario 1: 100 clients, 10 senders × 50 msg/s, 64 B "
                  "(50,000 deliveries/s offered)\n\n" + load_table(s1, peers_in(get("1"))))
    if get("2"):
        md.append("## Scenario 2: 1,000 clients, 4 senders × 25 msg/s "
                  "(100,000 deliveries/s offered)\n\n" + load_table(s2, peers_in(get("2"))))
    if get("3"):
        text, best, sweep = saturation_tables(get("3"))
        name = plot(out_dir, sweep)
        md.append("## Scenario 3: saturation (100 clients, 10 senders, rising rates)\n\n" + text
                  + (f"\n![saturation]({name})\n" if name else ""))
    if get("4"):
        text, per_conn = memory_table(get("4"))
        md.append("## Scenario 4: memory with idle clients\n\n" + text)
    if get("5"):
        md.append("## Scenario 5: growth (scenario 1's load at more clients)\n\n"
                  + growth_table(get("1"), get("5")))
    if get("6"):
        md.append("## Scenario 6: ten stuck clients (they never read) during scenarios 1 and 2\n\n"
                  + stuck_table(get("6"), s1, s2))
    if get("7"):
        md.append("## Scenario 7: everyone reconnects at once (5,000 clients, every handshake "
                  "in flight)\n\n" + storm_table(get("7")))
    if get("8"):
        md.append("## Scenario 8: slow disk (scenario 1 with a history file; slow: every write "
                  "and sync of it delayed 300 ms)\n\n" + slow_disk_table(get("8")))
    if s1 and "wschat" in s1:
        md.append("## Ratios\n\n" + ratios(s1, s2, best, per_conn))
    (out_dir / "REPORT.md").write_text("\n".join(md))
    print(out_dir / "REPORT.md")


if __name__ == "__main__":
    main()
