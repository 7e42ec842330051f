#!/usr/bin/env node
// socket.io pages against wschat, with the real clients: socket.io-client v4 (EIO=4) and v2
// (EIO=3, installed under the alias socket.io-client-v2), and a raw WebSocket client (ws).
//
//   node tests/socketio/run.mjs [path/to/wschat]      (default: target/debug/wschat)
//
// Starts wschat on a free 127.0.0.1 port (--port 0; the port is read from its log), then for
// every pair of client kinds: both connect and see their enter lines, each emits a message
// that both receive, and one disconnects while the other sees its leave. The kinds: v4 and
// v2 over the WebSocket transport, with their default options (HTTP long-polling, then the
// upgrade), polling only, and raw. Then rooms, HTML escaping, acks, history, the upgrade
// with chat going on after it, and polling-only and raw clients mixed in one room. Every wait is on an event with a
// deadline, never a fixed sleep. Exits 1 at the first failed check, naming it, with the
// server's log; the last line is `socketio: N passed, M failed`.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io as ioV4 } from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';
import WebSocket from 'ws';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const SERVER = path.resolve(process.argv[2] || path.join(REPO, 'target/debug/wschat'));
const WAIT_MS = 5_000;       // anything that should happen at once
const WATCHDOG_MS = 60_000;  // the whole run; it takes about a second

let serverLog = '';
let server;
let base; // http://127.0.0.1:PORT
const clients = new Set();

// ---------------------------------------------------------------- the server

function startServer() {
  const args = ['--bind', '127.0.0.1', '--port', '0', '--rate-limit', '0', '--log-level', 'info'];
  server = spawn(SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${SERVER} did not log "listening on" in time`)), WAIT_MS);
    const keep = (d) => {
      serverLog += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(serverLog);
      if (m && !base) {
        clearTimeout(timer);
        base = `http://127.0.0.1:${m[1]}`;
        resolve();
      }
    };
    server.stdout.on('data', keep);
    server.stderr.on('data', keep);
    server.once('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${SERVER}: ${e.message} (build it first: cargo build)`)); });
    server.once('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`wschat exited (${sig || code})`)); });
  });
}

function stopServer() {
  if (!server || server.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    server.once('exit', resolve);
    server.kill('SIGTERM');
  });
}

// ---------------------------------------------------------------- clients

// What every client has received, in order, as { event, line, obj }: for socket.io clients
// the event name and its arguments (the classic line first for enter/message/leave); for raw
// clients the JSON object, named by its classic type as the classic page reads it.
class Inbox {
  constructor(label) { this.label = label; this.items = []; this.cursor = 0; this.wake = null; }
  push(item) { this.items.push(item); if (this.wake) this.wake(); }
  // The next item (after the last one taken) for which `pred` holds; items skipped on the way
  // are consumed. Fails after WAIT_MS, saying what was expected and what came instead.
  async take(what, pred) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      while (this.cursor < this.items.length) {
        const item = this.items[this.cursor++];
        if (pred(item)) return item;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.items.slice(-5).map((i) => JSON.stringify([i.event, i.line ?? i.obj ?? i.reason]));
        throw new Error(`${this.label}: no ${what} within ${WAIT_MS} ms (last received: ${seen.join(', ') || 'nothing'})`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(timer); this.wake = null; resolve(); };
      });
    }
  }
  // The next item whose event is `event` and whose line is `line`.
  line(event, line) {
    return this.take(`${event} ${JSON.stringify(line)}`, (i) => i.event === event && i.line === line);
  }
}

const EVENTS = ['enter', 'message', 'leave', 'notice', 'rename', 'private'];

// How each kind of socket.io client is created: over the WebSocket transport (the README's
// way), with the default options (long-polling, then the upgrade: how most pages do it), or
// with long-polling alone.
const TRANSPORTS = {
  '': { transports: ['websocket'] },
  '-default': {},
  '-polling': { transports: ['polling'] },
};

// A socket.io client with the name (and room) in the query. `kind` is 'v4' or 'v2', with
// the suffix of a TRANSPORTS entry.
function sioClient(kind, name, room, extra = {}) {
  const query = { username: name, ...(room ? { room } : {}) };
  const version = kind.slice(0, 2);
  const make = version === 'v4' ? ioV4 : ioV2;
  const options = TRANSPORTS[kind.slice(2)];
  const socket = make(base, { ...options, query, reconnection: false, forceNew: true, ...extra });
  const c = {
    kind, name, socket, inbox: new Inbox(`${kind} client ${name}`),
    say: (text) => socket.emit('message', text),
    close: () => socket.close(),
  };
  for (const event of EVENTS) {
    socket.on(event, (first, second) => c.inbox.push(typeof first === 'string'
      ? { event, line: first, obj: second }
      : { event, obj: first }));
  }
  socket.on('connect_error', (error) => c.inbox.push({ event: 'connect_error', error }));
  socket.on('disconnect', (reason) => c.inbox.push({ event: 'disconnect', reason }));
  // Resolves with the transport's name when the client upgrades (default options).
  c.upgraded = new Promise((resolve) => socket.io.engine.once('upgrade', (t) => resolve(t.name)));
  clients.add(c);
  return c;
}

// The transport a socket.io client uses now.
function transportOf(c) {
  return c.socket.io.engine.transport.name;
}

// A raw WebSocket client, as the classic page connects.
function rawClient(name, room) {
  const q = new URLSearchParams({ name, ...(room ? { room } : {}) });
  const ws = new WebSocket(`${base.replace('http', 'ws')}/?${q}`);
  const c = {
    kind: 'raw', name, ws, inbox: new Inbox(`raw client ${name}`),
    say: (text) => ws.send(text),
    close: () => ws.close(),
  };
  ws.on('message', (data) => {
    const obj = JSON.parse(data.toString());
    const event = ['enter', 'message', 'leave'][obj.type] ?? obj.event;
    c.inbox.push({ event, line: obj.info, obj });
  });
  ws.on('close', (code) => c.inbox.push({ event: 'disconnect', reason: `close ${code}` }));
  ws.on('error', (error) => c.inbox.push({ event: 'connect_error', error }));
  clients.add(c);
  return c;
}

function client(kind, name, room) {
  return kind === 'raw' ? rawClient(name, room) : sioClient(kind, name, room);
}

// Connects a client and waits for its own enter line (the tutorial's server sends the
// newcomer its own `enter`; a raw client's is its welcome, type 0).
async function joined(kind, name, room) {
  const c = client(kind, name, room);
  await c.inbox.line('enter', `${name} comes in !!!`);
  return c;
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// ---------------------------------------------------------------- checks

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    failed++;
    console.log(`not ok ${passed + failed} - ${name}`);
    throw e;
  }
  passed++;
  console.log(`ok ${passed} - ${name} (${Date.now() - t0} ms)`);
}

// The scenario for one pair: `stay` and `go` connect and see the enter lines, each
// emits a message that both receive, then `go` disconnects and `stay` sees its leave.
async function pair(stayKind, goKind, room) {
  const stay = await joined(stayKind, `${stayKind}-stays`, room);
  const go = await joined(goKind, `${goKind}-goes`, room);
  await stay.inbox.line('enter', `${go.name} comes in !!!`);
  for (const [from, to] of [[stay, go], [go, stay]]) {
    const text = `hello from ${from.name}`;
    from.say(text);
    await from.inbox.line('message', `${from.name}: ${text}`);
    const got = await to.inbox.line('message', `${from.name}: ${text}`);
    assert(got.obj.text === text && got.obj.name === from.name, `the object: ${JSON.stringify(got.obj)}`);
  }
  go.close();
  await stay.inbox.line('leave', `${go.name} leaves.`);
  stay.close();
}

async function main() {
  const watchdog = setTimeout(() => {
    console.error(`\nFAILED: the whole run took over ${WATCHDOG_MS} ms`);
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();
  const t0 = Date.now();
  await startServer();
  console.log(`# ${path.relative(process.cwd(), SERVER) || SERVER} at ${base}`);

  // The tutorial's case: a socket.io page and a raw page in the default room.
  await check('v4 and raw in the lobby: enter, messages both ways, leave', () => pair('raw', 'v4'));
  let room = 0;
  for (const [stay, go] of [['raw', 'v2'], ['v4', 'raw'], ['v2', 'raw'], ['v4', 'v2'], ['v2', 'v4'],
    ['raw', 'v4-default'], ['raw', 'v2-default'], ['v4-default', 'v2-default'],
    ['raw', 'v4-polling'], ['raw', 'v2-polling'], ['v2-polling', 'v4-polling'], ['v4-polling', 'v2-default']]) {
    await check(`${stay} sees ${go} enter, chat and leave`, () => pair(stay, go, `pair-${++room}`));
  }

  await check('a room from the query: each socket.io client hears only its room', async () => {
    const a = await joined('v4', 'ann', 'room-a');
    const b = await joined('v2', 'bob', 'room-b');
    const a2 = await joined('v2', 'amy', 'room-a');
    await a.inbox.line('enter', 'amy comes in !!!');
    b.say('for room b');
    await b.inbox.line('message', 'bob: for room b');
    a2.say('for room a');
    for (const c of [a, a2]) {
      const next = await c.inbox.take('a message', (i) => i.event === 'message');
      assert(next.line === 'amy: for room a', `${c.name} got ${JSON.stringify(next.line)} from another room`);
    }
    // amy's line and enter were handled before bob's marker (ann has them), so had either
    // reached bob, it would come before the marker.
    b.say('marker');
    const next = await b.inbox.take('a message or enter', (i) => ['message', 'enter'].includes(i.event));
    assert(next.line === 'bob: marker', `bob in room-b got ${JSON.stringify(next.line)}`);
  });

  await check('HTML is escaped in the line, raw in the object; acks; /me as a message', async () => {
    const v4 = await joined('v4', 'esc', 'esc');
    const raw = await joined('raw', 'plain', 'esc');
    // The server acknowledges a message it accepted (43<id>[]: no arguments).
    const acked = await v4.socket.timeout(WAIT_MS).emitWithAck('message', '<b>hi</b>');
    assert(acked === undefined, `ack: ${JSON.stringify(acked)}`);
    const got = await v4.inbox.line('message', 'esc: &lt;b&gt;hi&lt;/b&gt;');
    assert(got.obj.text === '<b>hi</b>', `text: ${JSON.stringify(got.obj)}`);
    await raw.inbox.line('message', 'esc: &lt;b&gt;hi&lt;/b&gt;');
    raw.say('/me waves');
    const action = await v4.inbox.line('message', '* plain waves');
    assert(action.obj.event === 'action', `event: ${action.obj.event}`);
    v4.say('/who');
    const who = await v4.inbox.take('a who notice', (i) => i.event === 'notice' && i.obj.code === 'who');
    assert(JSON.stringify(who.obj.users) === '["esc","plain"]', `users: ${JSON.stringify(who.obj.users)}`);
  });

  await check('a v2 newcomer gets the room\'s history in its own format', async () => {
    const v4 = await joined('v4', 'early', 'hist');
    v4.say('before you came');
    await v4.inbox.line('message', 'early: before you came');
    const v2 = await joined('v2', 'late', 'hist');
    const replay = await v2.inbox.line('message', 'early: before you came');
    assert(replay.obj.history === true, `history flag: ${JSON.stringify(replay.obj)}`);
  });

  await check('default options: long-polling, the upgrade, and the chat goes on over the WebSocket', async () => {
    for (const version of ['v4', 'v2']) {
      const raw = await joined('raw', `${version}-watcher`, `up-${version}`);
      const c = sioClient(`${version}-default`, `${version}-upgrader`, `up-${version}`);
      // Its first request is a polling GET: it enters the chat before any upgrade.
      await c.inbox.line('enter', `${c.name} comes in !!!`);
      const timeout = new Promise((resolve) => setTimeout(() => resolve('no upgrade in time'), WAIT_MS));
      const upgraded = await Promise.race([c.upgraded, timeout]);
      assert(upgraded === 'websocket' && transportOf(c) === 'websocket', `${version}: ${upgraded}`);
      c.say('after the upgrade');
      await raw.inbox.line('message', `${c.name}: after the upgrade`);
      raw.say('to the upgraded');
      await c.inbox.line('message', `${raw.name}: to the upgraded`);
      c.close();
      await raw.inbox.line('leave', `${c.name} leaves.`);
      raw.close();
    }
  });

  await check('polling only: v4, v2 and raw clients in one room, a burst in order', async () => {
    const p4 = await joined('v4-polling', 'poll4', 'mixed');
    const p2 = await joined('v2-polling', 'poll2', 'mixed');
    const raw = await joined('raw', 'rawm', 'mixed');
    for (const c of [p4, p2]) assert(transportOf(c) === 'polling', `${c.name}: ${transportOf(c)}`);
    // A burst from the raw client: every polling client gets every line, in order (each
    // long-poll response carries what was queued).
    for (let i = 0; i < 20; i++) raw.say(`burst ${i}`);
    for (const c of [p4, p2]) {
      for (let i = 0; i < 20; i++) await c.inbox.line('message', `rawm: burst ${i}`);
    }
    p2.say('from v2 polling');
    for (const c of [raw, p4, p2]) await c.inbox.line('message', 'poll2: from v2 polling');
    p4.say('from v4 polling');
    for (const c of [raw, p4, p2]) await c.inbox.line('message', 'poll4: from v4 polling');
    p4.close();
    await raw.inbox.line('leave', 'poll4 leaves.');
    await p2.inbox.line('leave', 'poll4 leaves.');
    // What a page's network panel shows for the first request: the open packet.
    const resp = await fetch(`${base}/socket.io/?EIO=4&transport=polling&t=x`, { headers: { Origin: 'http://page.test' } });
    const body = await resp.text();
    assert(resp.status === 200 && body.startsWith('0{') && body.includes('"upgrades":["websocket"]'), `${resp.status} ${body}`);
    assert(resp.headers.get('access-control-allow-origin') === 'http://page.test', 'the Origin echoed');
    assert(resp.headers.get('access-control-allow-credentials') === 'true', 'with credentials');
  });

  await check('a namespace other than / gets "Invalid namespace"', async () => {
    const c = ioV4(`${base}/admin`, { transports: ['websocket'], reconnection: false, forceNew: true });
    const message = await new Promise((resolve) => c.on('connect_error', (e) => resolve(e.message)));
    c.close();
    assert(message === 'Invalid namespace', message);
  });

  await customEventChecks(); // its own block, below

  for (const c of clients) c.close();
  await stopServer();
  console.log(`# ${passed} checks passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`socketio: ${passed} passed, 0 failed`);
}

// ---------------------------------------------------------------- custom events
// emit('typing', …) and any event other than `message`: wschat relays it to the others in the
// sender's room, with the same name and arguments and then who sent it (docs/PROTOCOL.md,
// "Custom events"). Over transports: ['websocket'], so these run without long-polling.

// Records every `name` event `c` gets, as its arguments.
function listen(c, name) {
  const got = new Inbox(`${c.kind} client ${c.name}, ${name} events`);
  c.socket.on(name, (...args) => got.push({ event: name, args }));
  return got;
}

async function customEventChecks() {
  await check('a custom event reaches the others in the room, v4 to v2 and back, with its sender', async () => {
    const a = await joined('v4', 'typer4', 'custom');
    const b = await joined('v2', 'typer2', 'custom');
    const other = await joined('v4', 'outsider', 'custom-other');
    await a.inbox.line('enter', 'typer2 comes in !!!');
    const [aGot, bGot, otherGot] = [listen(a, 'typing'), listen(b, 'typing'), listen(other, 'typing')];
    for (const [from, toGot] of [[a, bGot], [b, aGot]]) {
      from.socket.emit('typing', true, { draft: 'hé <b>' });
      const { args } = await toGot.take('a typing event', () => true);
      assert(args.length === 3 && args[0] === true && JSON.stringify(args[1]) === '{"draft":"hé <b>"}',
        `the same arguments: ${JSON.stringify(args)}`);
      assert(args[2].from === from.name && args[2].room === 'custom' && Number.isInteger(args[2].time),
        `then who sent it: ${JSON.stringify(args[2])}`);
    }
    // The sender and another room never get it: had they, it would be in before their own
    // message comes back.
    for (const [c, got, want] of [[a, aGot, 1], [b, bGot, 1], [other, otherGot, 0]]) {
      c.say('marker');
      await c.inbox.line('message', `${c.name}: marker`);
      assert(got.items.length === want, `${c.name} got ${got.items.length} typing events, wanted ${want}`);
    }
  });

  await check('a custom event with an ack is acknowledged once relayed', async () => {
    const a = await joined('v4', 'acker', 'custom-ack');
    const acked = await a.socket.timeout(WAIT_MS).emitWithAck('reaction', '👍');
    assert(acked === undefined, `ack: ${JSON.stringify(acked)}`);
  });

  await check('a reserved name (one of the chat\'s own events) gets a notice, not a relay', async () => {
    const a = await joined('v4', 'spoofer', 'custom-reserved');
    const b = await joined('v2', 'victim', 'custom-reserved');
    await a.inbox.line('enter', 'victim comes in !!!');
    a.socket.emit('leave', 'victim leaves.');
    const notice = await a.inbox.take('an event-reserved notice', (i) => i.event === 'notice' && i.obj.code === 'event-reserved');
    assert(/own event/.test(notice.obj.text), notice.obj.text);
    b.say('marker');
    const next = await b.inbox.take('a message or leave', (i) => ['message', 'leave'].includes(i.event));
    assert(next.line === 'victim: marker', `the spoofed leave reached the room: ${JSON.stringify(next)}`);
  });
}

main().then(() => process.exit(0), async (e) => {
  console.error(`\nFAILED: ${e.message}`);
  for (const c of clients) c.close();
  await stopServer();
  console.error(`\n--- wschat's log ---\n${serverLog.split('\n').slice(-40).join('\n')}`);
  console.log(`socketio: ${passed} passed, ${Math.max(failed, 1)} failed`);
  process.exit(1);
});
