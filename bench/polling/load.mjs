#!/usr/bin/env node
// Long-polling load: N socket.io-client v4 clients from Node in one room, K of them sending
// R messages a second each (scenario 1's shape: 100 clients, 10 senders, 50 msg/s, 64-byte
// lines), over one transport:
//
//   websocket         transports: ['websocket'] (the comparison, same client library)
//   polling-keepalive transports: ['polling'], polls on kept-alive connections (an http.Agent
//                     with keepAlive, as a browser does)
//   polling-close     transports: ['polling'], a new TCP connection (and a new server thread)
//                     per request (socket.io-client's default in Node: no agent)
//
//   node bench/polling/load.mjs --url http://127.0.0.1:PORT --pid SERVER_PID --mode MODE \
//        [-n 100] [-k 10] [-r 50] [-d 10] [--start-at UNIX_MS --room N --dump FILE]
//
// Prints one JSON line: sent, expected and delivered deliveries, lost, p50/p90/p99 latency
// (send to receipt, ms), and the server's CPU time per delivery (µs, from /proc/PID/stat over
// the sending window and the drain). bench/polling/run.py runs several of these at once (one
// Node process is not enough for 100 polling clients): each holds part of the room (--room is
// the whole room's size), starts sending at --start-at, and dumps its latencies to --dump.

import fs from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { io } from 'socket.io-client';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const URL = opt('--url');
const PID = opt('--pid');
const MODE = opt('--mode', 'polling-keepalive');
const N = Number(opt('-n', 100));
const K = Number(opt('-k', 10));
const RATE = Number(opt('-r', 50));
const DURATION_S = Number(opt('-d', 10));
const DRAIN_MS = 2000;
const START_AT = Number(opt('--start-at', 0));
const ROOM = Number(opt('--room', N));
const DUMP = opt('--dump');
const CLK_TCK = 100;

function cpuTicks() {
  const stat = fs.readFileSync(`/proc/${PID}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

// One agent per client, as each browser has its own connections.
const agentFor = () => (MODE === 'polling-keepalive' ? new http.Agent({ keepAlive: true }) : false);
const transports = MODE === 'websocket' ? ['websocket'] : ['polling'];

const latencies = [];
let delivered = 0;
const sockets = [];

function connect(i) {
  return new Promise((resolve, reject) => {
    const socket = io(URL, {
      transports, agent: agentFor(), forceNew: true, reconnection: false,
      query: { username: `c${i}-${process.pid}`, room: 'bench' },
    });
    const timer = setTimeout(() => reject(new Error(`client ${i} did not enter`)), 20_000);
    socket.on('enter', (line) => {
      if (line === `c${i}-${process.pid} comes in !!!`) { clearTimeout(timer); resolve(socket); }
    });
    socket.on('message', (_line, obj) => {
      const m = /^b (\d+(?:\.\d+)?) /.exec(obj?.text ?? '');
      if (!m) return;
      delivered++;
      latencies.push(performance.timeOrigin + performance.now() - Number(m[1]));
    });
    socket.on('connect_error', (e) => { clearTimeout(timer); reject(e); });
  });
}

async function main() {
  for (let i = 0; i < N; i += 10) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + 10); j++) batch.push(connect(j));
    sockets.push(...(await Promise.all(batch)));
  }
  // The enter lines go by; several generators start together.
  await new Promise((r) => setTimeout(r, START_AT ? Math.max(0, START_AT - Date.now()) : 1000));
  // No reset here: only the load's lines count, and another generator may start first.
  const cpu0 = cpuTicks();
  const gen0 = process.cpuUsage();
  const t0 = performance.now();
  let sent = 0;
  const pad = 'x'.repeat(40);
  const timers = [];
  for (let s = 0; s < K; s++) {
    const sender = sockets[s];
    const every = 1000 / RATE;
    let next = t0 + (s * every) / K;
    const tick = () => {
      const now = performance.now();
      while (next <= now && now - t0 < DURATION_S * 1000) {
        sender.emit('message', `b ${(performance.timeOrigin + performance.now()).toFixed(3)} ${pad}`);
        sent++;
        next += every;
      }
      if (now - t0 < DURATION_S * 1000) timers.push(setTimeout(tick, Math.max(0, next - performance.now())));
    };
    tick();
  }
  await new Promise((r) => setTimeout(r, DURATION_S * 1000 + DRAIN_MS));
  const cpu1 = cpuTicks();
  const gen = process.cpuUsage(gen0);
  const wallMs = performance.now() - t0;
  const expected = sent * ROOM;
  if (DUMP) fs.writeFileSync(DUMP, JSON.stringify(latencies.map((l) => +l.toFixed(3))));
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : null;
  const cpuUs = ((cpu1 - cpu0) / CLK_TCK) * 1e6;
  const out = {
    mode: MODE, clients: N, senders: K, rate: RATE, duration_s: DURATION_S,
    sent, expected, delivered, lost: expected - delivered,
    p50_ms: +q(0.5).toFixed(2), p90_ms: +q(0.9).toFixed(2), p99_ms: +q(0.99).toFixed(2),
    server_cpu_ms: cpuUs / 1000, server_cpu_us_per_delivery: +(cpuUs / Math.max(1, delivered)).toFixed(2),
    // The generator's own CPU: near 100 % means the figures measure Node, not the server.
    gen_cpu_pct: +((100 * (gen.user + gen.system)) / 1000 / wallMs).toFixed(1),
  };
  console.log(JSON.stringify(out));
  for (const s of sockets) s.close();
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
