#!/usr/bin/env node
// The chat page in a real browser (Debian's chromium, driven by playwright-core).
//
//   node tests/browser/run.mjs [--server target/release/wschat] [--www-from-disk]
//                              [--chromium /usr/bin/chromium] [--update-docs-screenshot]
//
// Starts wschat on a free 127.0.0.1 port (and, later, `python3 -m http.server` serving www/),
// opens the page as people would, and checks what they see. Every wait is on a condition
// (a line appears, the state reads "open"), never a fixed sleep. Exits 1 at the first failed
// check, naming it; screenshots and the server log go to tests/browser/artifacts/.
//
// Then pages as people write them: a second wschat serves a copy of www/ plus the classic
// tutorial's raw page (tests/browser/pages/classic.html) from --www, where their inline
// scripts must run; the tutorial's socket.io page (www/socketio.html) loads socket.io-client
// 2.0.3 from a CDN, and the test answers that request with the npm package's file.
//
// Room, user-list, history and /msg checks against the real server run only when the server
// sends `welcome` (docs/PROTOCOL.md); the page's handling of every event type is checked
// against a scripted server (playwright's WebSocket routing) whatever the server supports.

import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const ARTIFACTS = path.join(HERE, 'artifacts');
const WAIT_MS = 10_000;      // anything that should happen at once
const RECONNECT_MS = 25_000; // the page's backoff may have grown to 8 s while the server was down
const PHONE = { width: 360, height: 640 };
const DESKTOP = { width: 1000, height: 640 };

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
// The socket.io page loads socket.io-client 2.0.3 from a CDN; the test answers that request
// with the npm package's own file (tests run offline, on 127.0.0.1 only).
const SIO_CDN = /^https:\/\/cdnjs\.cloudflare\.com\/ajax\/libs\/socket\.io\/2\.0\.3\/socket\.io\.js$/;
const SIO_DIST = readFileSync(createRequire(import.meta.url).resolve('socket.io-client/dist/socket.io.js'), 'utf8');
// The tutorial-style socket.io page with default options starts with HTTP long-polling.
// (Set to false, the case still runs but is reported as pending, TAP "# TODO", never passed.)
const SOCKETIO_POLLING = true;
const argv = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : fallback;
};
const SERVER = path.resolve(opt('--server', path.join(REPO, 'target/release/wschat')));
const CHROMIUM = opt('--chromium', process.env.CHROMIUM || '/usr/bin/chromium');
const FROM_DISK = argv.includes('--www-from-disk'); // test www/ as edited, without rebuilding

// ---------------------------------------------------------------- processes and helpers

const children = new Set();
let serverLog = '';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

// Polls `fn` until it returns something truthy; fails with `what` after `ms`.
async function until(what, fn, ms = WAIT_MS) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}` +
        (last instanceof Error ? ` (${last.message.split('\n')[0]})` : ''));
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function start(label, cmd, args, port) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const keep = (d) => { serverLog += `[${label}] ${d}`; };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => child.once('exit', (code, sig) => {
    children.delete(child);
    resolve(sig || code);
  }));
  child.once('error', (e) => { serverLog += `[${label}] spawn failed: ${e.message}\n`; });
  return until(`${label} to listen on 127.0.0.1:${port}`, async () => {
    if (child.exitCode !== null) throw new Error(`${label} exited with ${child.exitCode}`);
    return canConnect(port);
  }).then(() => child);
}

// A history file (where the server has them) makes a restart replay the room's lines: the
// page must not show again what it already shows.
const HISTORY_FILE = path.join(mkdtempSync(path.join(os.tmpdir(), 'wschat-history-')), 'history.jsonl');

function startWschat(port) {
  const args = ['--bind', '127.0.0.1', '--port', String(port), '--rate-limit', '0'];
  if (FROM_DISK) args.push('--www', path.join(REPO, 'www'), '--www-strict-csp'); // the built-in page's headers
  if (execFileSync(SERVER, ['--help'], { encoding: 'utf8' }).includes('--history-file')) {
    args.push('--history-file', HISTORY_FILE);
  }
  return start('wschat', SERVER, args, port);
}

async function stop(child, signal = 'SIGTERM') {
  if (!children.has(child)) return;
  child.kill(signal);
  const how = await Promise.race([child.exited, new Promise((r) => setTimeout(r, WAIT_MS, 'timeout'))]);
  if (how === 'timeout') {
    child.kill('SIGKILL');
    throw new Error(`process ${child.pid} did not stop within ${WAIT_MS} ms of ${signal}`);
  }
}

function killAll() { for (const c of children) c.kill('SIGKILL'); }
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130); });

function assert(ok, message) { if (!ok) throw new Error(message); }

let passed = 0;
let pending = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    console.log(`not ok ${passed + 1} - ${name}`);
    e.message = `${name}: ${e.message}`;
    throw e;
  }
  passed++;
  console.log(`ok ${passed} - ${name} (${Date.now() - t0} ms)`);
}

// A check that waits on work not merged yet: run, but reported as pending whatever happens,
// so it can neither fail the run nor pass unnoticed. With `ready` it is an ordinary check.
async function pendingCheck(name, ready, why, fn) {
  if (ready) return check(name, fn);
  pending++;
  const n = passed + pending;
  try {
    await fn();
    console.log(`ok ${n} - ${name} # TODO passes now: ${why}`);
  } catch (e) {
    console.log(`not ok ${n} - ${name} # TODO pending: ${why} (${e.message.split('\n')[0]})`);
  }
}

// ---------------------------------------------------------------- what a person sees

const line = (page, text, cls = '') => page.locator(`#log .line${cls}`, { hasText: text });
async function stateIs(page, re, timeout = WAIT_MS) {
  try {
    await page.locator('#state').filter({ hasText: re }).waitFor({ timeout });
  } catch {
    const now = await page.locator('#state').textContent().catch(() => '?');
    throw new Error(`the state line never read ${re} within ${timeout} ms; it reads ${JSON.stringify(now)}`);
  }
}
const userNames = (page) => page.locator('#users li').allTextContents();

async function say(page, text) {
  await page.locator('#text').fill(text);
  await page.locator('#text').press('Enter');
}

async function open(ctx, url, viewport) {
  const page = await ctx.newPage();
  await page.setViewportSize(viewport);
  page.problems = [];
  page.sockets = [];
  page.on('pageerror', (e) => page.problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) page.problems.push(m.text());
  });
  page.on('websocket', (ws) => page.sockets.push(ws.url()));
  page.response = await page.goto(url);
  return page;
}

// Contrast of every element that directly holds text (and of input borders and the focus
// ring, at 3:1 for non-text), against the background actually under it.
function measureContrast() {
  const rgba = (c) => { const v = c.match(/[\d.]+/g).map(Number); return v.length === 3 ? [...v, 1] : v; };
  const lin = (x) => { x /= 255; return x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  const over = (top, under) => top.slice(0, 3).map((v, i) => v * top[3] + under[i] * (1 - top[3]));
  const bgOf = (el) => {
    const layers = [];
    for (; el; el = el.parentElement) {
      const c = rgba(getComputedStyle(el).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] === 1) break;
    }
    let base = [255, 255, 255];
    for (const l of layers.reverse()) base = over(l, base);
    return base;
  };
  const ratio = (fg, bg) => { const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x); return (a + 0.05) / (b + 0.05); };
  const out = [];
  const add = (what, el, color, min) => {
    const bg = bgOf(el);
    out.push({ what, ratio: Math.round(ratio(over(rgba(color), bg), bg) * 100) / 100, min });
  };
  const one = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  const name = (el) => { // a log line's parts are named after their line: li.type-2 .who
    const li = el.closest('#log .line');
    return li && li !== el ? one(li) + ' ' + one(el) : one(el);
  };
  for (const el of document.querySelectorAll('body *')) {
    if (!el.getClientRects().length) continue; // not shown
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (own || (el.tagName === 'INPUT' && el.value)) add(name(el), el, getComputedStyle(el).color, 4.5);
    if (el.tagName === 'INPUT') {
      add(name(el) + ' border', el.parentElement, getComputedStyle(el).borderTopColor, 3);
      if (el.placeholder) add(name(el) + '::placeholder', el, getComputedStyle(el, '::placeholder').color, 4.5);
    }
  }
  // The state's colour in each of its four words, not only the one showing now.
  const state = document.getElementById('state'), was = state.className;
  for (const word of ['connecting', 'open', 'closing', 'closed']) {
    state.className = 'state-' + word;
    add('#state.state-' + word, state, getComputedStyle(state).color, 4.5);
  }
  state.className = was;
  const focus = document.getElementById('text');
  focus.focus();
  add('focus ring', focus.parentElement, getComputedStyle(focus).outlineColor, 3);
  focus.blur();
  return out;
}

// axe-core's WCAG 2.1 A/AA and best-practice rules on the page as it is now.
async function axe(page, label) {
  await page.evaluate(AXE); // evaluate, not a <script>: the page's CSP forbids inline scripts
  const found = await page.evaluate(async () => (await window.axe.run(document, {
    runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'],
  })).violations.map((v) => `${v.id} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')})`));
  assert(!found.length, `axe (${label}): ${found.join('; ')}`);
}

async function contrast(page, scheme) {
  await page.emulateMedia({ colorScheme: scheme });
  const rows = await page.evaluate(measureContrast);
  const worst = new Map(); // per element kind, the lowest ratio
  for (const r of rows) if (!worst.has(r.what) || worst.get(r.what).ratio > r.ratio) worst.set(r.what, r);
  const bad = [...worst.values()].filter((r) => r.ratio < r.min);
  const list = [...worst.values()].sort((a, b) => a.ratio - b.ratio);
  console.log(`# contrast, ${scheme}: ${list.map((r) => `${r.what} ${r.ratio}`).join(', ')}`);
  assert(!bad.length, `contrast below WCAG AA (${scheme}): ` + bad.map((r) => `${r.what} ${r.ratio} < ${r.min}`).join('; '));
  await page.emulateMedia({ colorScheme: null });
}

// ---------------------------------------------------------------- the run

async function main() {
  const t0 = Date.now();
  for (const [what, file, fix] of [['chromium', CHROMIUM, 'apt-get install chromium, or pass --chromium PATH'],
    ['wschat', SERVER, 'cargo build --release, or pass --server PATH']]) {
    assert(existsSync(file), `no ${what} at ${file}: ${fix}`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let server = await startWschat(port);
  // The binary embeds www/ when it is built: a stale one would test yesterday's page.
  for (const f of ['index.html', 'chat.js', 'chat.css']) {
    const served = await (await fetch(`${base}/${f}`)).text();
    assert(served === readFileSync(path.join(REPO, 'www', f), 'utf8'),
      `${SERVER} serves an older www/${f}: rebuild it (cargo build) or pass --www-from-disk`);
  }
  const profile = mkdtempSync(path.join(os.tmpdir(), 'wschat-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: DESKTOP,
  });
  const shots = [];
  const shoot = async (page, name) => {
    const file = path.join(ARTIFACTS, name + '.png');
    await page.screenshot({ path: file });
    shots.push(file);
  };
  let alice, bob;
  try {
    // Does this server speak the rooms protocol? Ask it once, before anyone is in the chat.
    const probe = await ctx.newPage();
    await probe.goto(base + '/config.js');
    const rich = await probe.evaluate((url) => new Promise((resolve, reject) => {
      const s = new WebSocket(url);
      s.onmessage = (e) => { resolve(JSON.parse(e.data).event === 'welcome'); s.close(); };
      s.onerror = () => reject(new Error('probe socket failed'));
    }), `ws://127.0.0.1:${port}/?name=probe&room=probe-room`);
    await probe.close();
    console.log(`# wschat ${rich ? 'sends welcome: room checks on' : 'is classic (no welcome): room checks skipped'}`);

    await check('two pages open the chat served by wschat and read "open"', async () => {
      alice = await open(ctx, `${base}/?name=alice`, DESKTOP);
      await stateIs(alice, /^open$/);
      bob = await open(ctx, `${base}/?name=bob`, PHONE);
      await stateIs(bob, /^open$/);
      assert(/default-src 'self'/.test(alice.response.headers()['content-security-policy'] || ''),
        'the page is served with its Content-Security-Policy');
      assert(await alice.evaluate(() => window.WSCHAT_CONFIG.servedByWschat === true), 'config.js says servedByWschat');
      assert(alice.sockets[0] === `ws://127.0.0.1:${port}/?name=alice`,
        `the page connects to its own origin with its name: ${alice.sockets[0]}`);
    });

    await check('the second one joining shows a join line on the first', async () => {
      await line(alice, 'bob', '.type-0').waitFor({ timeout: WAIT_MS });
      await line(alice, 'alice', '.type-0').waitFor({ timeout: WAIT_MS });
    });

    await check('a message typed and sent with Enter shows on both pages, with its time', async () => {
      await say(bob, 'hi alice, is the Pi still up?');
      for (const p of [alice, bob]) await line(p, 'hi alice, is the Pi still up?', '.type-1').waitFor({ timeout: WAIT_MS });
      assert(await bob.locator('#text').inputValue() === '', 'the input is emptied after sending');
      const t = await line(alice, 'is the Pi', '.type-1').locator('time').textContent();
      assert(/\d{1,2}[:.]\d{2}/.test(t), `the line shows its time: ${JSON.stringify(t)}`);
      await say(alice, 'Up for 41 days. Try the room switcher, and /help for commands.');
      await line(bob, 'Up for 41 days', '.type-1').waitFor({ timeout: WAIT_MS });
    });

    await check('markup in a message shows as literal text and runs nothing', async () => {
      const evil = '<img src=x onerror=window.__pwned=1> <b>bold?</b>';
      await say(alice, evil);
      for (const p of [alice, bob]) {
        const l = line(p, evil, '.type-1');
        await l.waitFor({ timeout: WAIT_MS });
        assert((await l.textContent()).includes(evil), 'the text is shown exactly as typed');
        assert(await p.locator('#log img, #log b').count() === 0, 'no element was made from the message');
        assert(await p.evaluate(() => window.__pwned) === undefined, 'the onerror handler never ran');
      }
    });

    await check('the people list shows who is here', async () => {
      await until('alice to list alice and bob', async () => {
        const names = (await userNames(alice)).join('|');
        return /alice \(you\)/.test(names) && /bob/.test(names);
      });
      if (rich) await until('bob to list alice (from welcome.users)', async () => (await userNames(bob)).some((n) => n.startsWith('alice')));
    });

    await check('the phone layout: no sideways scroll, full-width rows, 44 px targets, labels', async () => {
      const r = await bob.evaluate(() => {
        const w = document.documentElement.clientWidth;
        const sideways = document.documentElement.scrollWidth > w;
        const narrow = ['name-form', 'room-form', 'send'].filter((id) =>
          document.getElementById(id).getBoundingClientRect().width < w * 0.9);
        const small = [...document.querySelectorAll('button, input, summary')]
          .filter((el) => el.getClientRects().length)
          .map((el) => [el.id || el.textContent.trim(), el.getBoundingClientRect()])
          .filter(([, b]) => b.width < 44 || b.height < 44).map(([n, b]) => `${n} ${b.width}x${b.height}`);
        const unlabelled = [...document.querySelectorAll('input')].filter((i) => !i.labels.length).map((i) => i.id);
        const outside = [...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > w + 0.5)
          .map((el) => el.id || el.tagName);
        return { sideways, narrow, small, unlabelled, outside };
      });
      assert(!r.sideways && !r.outside.length, `nothing is wider than 360 px: ${r.outside.join(', ')}`);
      assert(!r.narrow.length, `rows take the full width: ${r.narrow.join(', ')}`);
      assert(!r.small.length, `touch targets are at least 44x44: ${r.small.join(', ')}`);
      assert(!r.unlabelled.length, `every input has a label: ${r.unlabelled.join(', ')}`);
      const roles = await bob.evaluate(() => [document.getElementById('log').getAttribute('role'),
        document.getElementById('log').getAttribute('aria-live'), document.getElementById('state').getAttribute('role')]);
      assert(roles.join() === 'log,polite,status', `log and state roles: ${roles}`);
    });

    await check('axe-core finds no WCAG A/AA or best-practice violation (desktop, phone)', async () => {
      await axe(alice, 'desktop');
      await axe(bob, 'phone');
    });

    await check('Tab walks the page in reading order with a visible focus ring', async () => {
      await bob.locator('h1').click(); // start from the top, as a keyboard user would
      const seen = [];
      for (let i = 0; i < 7; i++) {
        await bob.keyboard.press('Tab');
        seen.push(await bob.evaluate(() => {
          const el = document.activeElement;
          const s = getComputedStyle(el);
          const ring = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
          return (el.id || el.tagName.toLowerCase() + ':' + el.textContent.trim().split(' ')[0]) + (ring ? '' : ' (no focus ring)');
        }));
      }
      const want = ['name', 'room', 'button:Join', 'log', 'summary:People', 'text', 'button:Send'];
      assert(seen.join() === want.join(), `focus order ${seen.join(' > ')}, wanted ${want.join(' > ')}`);
    });

    if (rich) {
      await check('/msg sends a private line, marked, to the two people only', async () => {
        await say(alice, '/msg bob the wifi password is on the fridge');
        for (const p of [alice, bob]) {
          const l = line(p, 'the wifi password', '.type-5');
          await l.waitFor({ timeout: WAIT_MS });
          assert(/private/i.test(await l.locator('.badge').textContent()), 'the private line carries a "private" badge');
        }
      });

      await check('the room switcher moves one page to another room, and rooms are isolated', async () => {
        await bob.locator('#room').fill('robots');
        await bob.locator('#room').press('Enter');
        await stateIs(bob, /^open$/);
        await line(bob, 'Welcome to robots', '.type-0').waitFor({ timeout: WAIT_MS }); // its welcome
        assert(new URL(bob.url()).searchParams.get('room') === 'robots', `the URL names the room: ${bob.url()}`);
        await line(alice, 'bob', '.type-2').waitFor({ timeout: WAIT_MS }); // bob left the lobby
        await until('bob alone in the robots list', async () => (await userNames(bob)).join() === 'bob (you)');
        // Each page sees its own line come back; a leak would have arrived before it.
        await say(alice, 'lobby only');
        await line(alice, 'lobby only').waitFor({ timeout: WAIT_MS });
        await say(bob, 'robots only');
        await line(bob, 'robots only').waitFor({ timeout: WAIT_MS });
        await say(alice, 'lobby again');
        await line(alice, 'lobby again').waitFor({ timeout: WAIT_MS });
        assert(await line(bob, 'lobby only').count() === 0, 'a lobby message reached robots');
        assert(await line(alice, 'robots only').count() === 0, 'a robots message reached the lobby');
      });

      await check('back in the lobby, its history replays faded with the original times', async () => {
        await bob.locator('#room').fill('');
        await bob.locator('#room').press('Enter');
        await stateIs(bob, /^open$/);
        assert(!new URL(bob.url()).searchParams.has('room'), `the lobby needs no ?room=: ${bob.url()}`);
        const old = line(bob, 'lobby only', '.history');
        await old.waitFor({ timeout: WAIT_MS });
        assert(await old.locator('time').count() === 1, 'a replayed line shows its time');
        assert(await line(bob, 'lobby only').count() === 1, 'each old line is shown once');
      });

      await check('changing the name field renames in place (/nick), once', async () => {
        const notices = await alice.locator('#log .line.type-3').count();
        await alice.locator('#name').fill('alicia');
        await alice.locator('#name').press('Enter');
        await line(bob, 'alicia', '.type-4').waitFor({ timeout: WAIT_MS });
        await until('bob to list alicia, not alice', async () => {
          const names = await userNames(bob);
          return names.includes('alicia') && !names.includes('alice');
        });
        await alice.locator('#text').focus(); // leave the name field, as a person would
        assert(await alice.locator('#name').inputValue() === 'alicia', 'the name field shows the new name');
        await say(alice, 'alicia now'); // anything a second /nick caused arrives before this
        await line(alice, 'alicia now', '.type-1').waitFor({ timeout: WAIT_MS });
        const extra = (await alice.locator('#log .line.type-3').allTextContents()).slice(notices);
        assert(!extra.length, `one rename, no second /nick: ${extra.join('; ')}`);
        assert(await alice.locator('#log .line.type-4').count() === 1, 'exactly one rename line');
      });
    }
    await shoot(alice, 'wschat-desktop');
    await shoot(bob, 'wschat-phone');
    if (rich) {
      await check('a conversation in its own room, for the README screenshot', async () => {
        const file = await readmeScene(ctx, base, shoot);
        if (argv.includes('--update-docs-screenshot')) {
          copyFileSync(file, path.join(REPO, 'docs/screenshot.png'));
          console.log('# wrote docs/screenshot.png');
        }
      });
    }

    await check('SIGTERM to the server shows "closed" and a reconnect countdown', async () => {
      const t = Date.now();
      await stop(server);
      for (const p of [alice, bob]) await stateIs(p, /^closed — reconnecting in [\d.]+ s$/);
      console.log(`#   server stopped and both pages read "closed" in ${Date.now() - t} ms`);
      // The state line grew and the phone's log shrank: once the page has rendered that (two
      // frames), and before its first retry (0.5 s) grows the log back, the newest line shows.
      const seen = await bob.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => {
        const log = document.getElementById('log');
        const last = log.lastElementChild.getBoundingClientRect(), box = log.getBoundingClientRect();
        resolve({ state: document.getElementById('state').textContent, shows: last.bottom <= box.bottom + 1 });
      }))));
      assert(seen.state.startsWith('closed'), `measured while closed (took too long: ${seen.state})`);
      assert(seen.shows, 'the newest line stays in view when the log shrinks');
      await shoot(bob, 'wschat-phone-closed');
    });

    await check('restarting the server on the same port: the pages reconnect by themselves', async () => {
      const t = Date.now();
      server = await startWschat(port);
      for (const p of [alice, bob]) await stateIs(p, /^open$/, RECONNECT_MS);
      console.log(`#   both pages back to "open" ${Date.now() - t} ms after the restart`);
      await say(bob, 'back after the restart');
      await line(alice, 'back after the restart', '.type-1').waitFor({ timeout: WAIT_MS });
      // The new server replayed the lobby's history (from its file) before that line.
      assert(await line(alice, 'is the Pi still up?').count() === 1, 'a reconnect shows no line twice');
    });

    await check('closing a page shows its leave line on the other', async () => {
      const before = await line(alice, 'bob', '.type-2').count();
      await bob.close();
      await until('a new leave line for bob', async () => (await line(alice, 'bob', '.type-2').count()) > before);
      await until('bob gone from the people list', async () => !(await userNames(alice)).some((n) => n.startsWith('bob')));
    });

    await check('the tutorial\'s echo and scream pages talk to wschat\'s /echo and /scream', async () => {
      for (const [page, sent, back] of [['echo', 'hi <b>x</b>', 'hi <b>x</b>'], ['scream', 'hi <b>x</b>', 'HI <B>X</B>!!!']]) {
        const step = await open(ctx, `${base}/${page}.html`, DESKTOP);
        await step.locator('#use-wschat').click(); // shown because wschat served the page
        assert((await step.locator('#url').inputValue()).endsWith(`/${page}`), `${page}: the URL points at wschat's /${page}`);
        await step.locator('#connect').click();
        await until(`${page}: readyState open`, async () => /open/.test(await step.locator('#state').textContent()));
        await step.locator('#message').fill(sent);
        await step.locator('#message').press('Enter');
        await step.locator('#log li', { hasText: back }).last().waitFor({ timeout: WAIT_MS });
        assert(await step.locator('#log b').count() === 0, `${page}: the frame is shown as text`);
        await step.locator('#disconnect').click();
        await until(`${page}: readyState closed`, async () => /closed/.test(await step.locator('#state').textContent()));
        assert(!step.problems.length, `${page}: no errors or CSP violations: ${step.problems.join('; ')}`);
        await step.close();
      }
    });

    await check('opened on the server\'s own machine, the page shows the address to give others, with its room', async () => {
      assert(await alice.locator('#share').isHidden(), 'bound to 127.0.0.1: no address to give');
      const anyPort = await freePort();
      const anyArgs = ['--bind', '0.0.0.0', '--port', String(anyPort)];
      if (FROM_DISK) anyArgs.push('--www', path.join(REPO, 'www'));
      const any = await start('wschat 0.0.0.0', SERVER, anyArgs, anyPort);
      try {
        const page = await open(ctx, `http://127.0.0.1:${anyPort}/?name=teacher&room=class`, DESKTOP);
        const urls = await page.evaluate(() => window.WSCHAT_CONFIG.shareUrls);
        assert(Array.isArray(urls) && urls.length > 0 && !urls.some((u) => /127\.0\.0\.1|localhost/.test(u)),
          `config.js lists this machine's other addresses: ${JSON.stringify(urls)}`);
        const link = page.locator('#share-url');
        await link.waitFor({ timeout: WAIT_MS });
        const want = urls[0] + '?room=class';
        assert(await link.textContent() === want && await link.getAttribute('href') === want,
          `the link is the first address with the room: ${await link.textContent()}`);
        await axe(page, 'with the address to give');
        assert(!page.problems.length, `no errors or CSP violations: ${page.problems.join('; ')}`);
        await page.close();
      } finally {
        await stop(any);
      }
    });

    for (const p of [alice]) assert(!p.problems.length, `no errors or CSP violations: ${p.problems.join('; ')}`);
    if (bob.problems.length) throw new Error(`no errors or CSP violations: ${bob.problems.join('; ')}`);

    // ------------------------------------------------ www/ from any static server
    const staticPort = await freePort();
    const statik = await start('http.server', 'python3',
      ['-m', 'http.server', String(staticPort), '--bind', '127.0.0.1', '--directory', path.join(REPO, 'www')], staticPort);
    const staticBase = `http://127.0.0.1:${staticPort}`;

    await check('www/ served by python3 -m http.server with ?ws= joins and chats', async () => {
      const carol = await open(ctx, `${staticBase}/?name=carol&ws=ws://127.0.0.1:${port}/`, DESKTOP);
      await stateIs(carol, /^open$/);
      assert(await carol.evaluate(() => window.WSCHAT_CONFIG.servedByWschat === false), 'the static config.js is used');
      await line(alice, 'carol', '.type-0').waitFor({ timeout: WAIT_MS });
      await say(carol, 'hello from a static server');
      for (const p of [alice, carol]) await line(p, 'hello from a static server', '.type-1').waitFor({ timeout: WAIT_MS });
      await shoot(carol, 'static-server');
      assert(!carol.problems.length, carol.problems.join('; '));
      await carol.close();
    });

    await check('without ?ws= a statically served page connects to port 3000 of its host', async () => {
      const dave = await ctx.newPage();
      const seen = [];
      await dave.routeWebSocket(() => true, (ws) => { seen.push(ws.url()); ws.close(); });
      await dave.goto(`${staticBase}/?name=dave&room=x`);
      await until('a WebSocket attempt', () => seen.length);
      assert(seen[0] === 'ws://127.0.0.1:3000/?name=dave&room=x', `connects to ${seen[0]}`);
      await dave.close();
    });

    await check('reconnect delays double from 0.5 s to a 10 s cap, and reset once a connection opens', async () => {
      const eve = await ctx.newPage();
      await eve.clock.install(); // the page's timers run when the test says: no waiting 35 s
      let accept = false, socket;
      await eve.routeWebSocket(/:3000\//, (ws) => {
        socket = ws;
        if (!accept) return void ws.close({ code: 1011 }); // refused, as by a server that is down
        ws.send(JSON.stringify({ type: 0, event: 'welcome', name: 'eve', room: 'lobby', users: ['eve'], time: Date.now() }));
      });
      await eve.goto(`${staticBase}/?name=eve`);
      for (const s of ['0.5', '1', '2', '4', '8', '10', '10']) {
        await stateIs(eve, new RegExp(`^closed — reconnecting in ${s} s$`));
        await eve.clock.runFor(Number(s) * 1000);
      }
      accept = true;
      await eve.clock.runFor(10_000);
      await stateIs(eve, /^open$/);
      await socket.close({ code: 1001 });
      await stateIs(eve, /^closed — reconnecting in 0.5 s$/);
      await eve.close();
    });

    await check('every event type, shown from a scripted server: lines, people, /nick, limits', async () => {
      await scripted(ctx, staticBase, shoot);
    });

    await pagesFromWww(ctx, base, staticBase, port, shoot);

    await stop(statik);
    await stop(server);
    console.log(`# ${passed} checks passed in ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${path.relative(process.cwd(), ARTIFACTS)}/`);
    console.log(`browser: ${passed} passed, 0 failed${pending ? `, ${pending} pending` : ''}`);
  } catch (e) {
    for (const [name, p] of [['alice', alice], ['bob', bob]]) {
      if (p && !p.isClosed()) await p.screenshot({ path: path.join(ARTIFACTS, `failed-${name}.png`) }).catch(() => {});
    }
    throw e;
  } finally {
    writeFileSync(path.join(ARTIFACTS, 'server.log'), serverLog);
    await ctx.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    rmSync(path.dirname(HISTORY_FILE), { recursive: true, force: true });
    killAll();
  }
}

// Two people in a room of their own, typing what a class might: commands included.
async function readmeScene(ctx, base, shoot) {
  const lin = await open(ctx, `${base}/?name=lin&room=pi-club`, DESKTOP); // leaves history behind
  await stateIs(lin, /^open$/);
  await say(lin, 'Pi is back on its shelf; the charger is in the drawer.');
  await line(lin, 'charger', '.type-1').waitFor({ timeout: WAIT_MS });
  await lin.close();
  const priya = await open(ctx, `${base}/?name=priya&room=pi-club`, { width: 960, height: 560 });
  await stateIs(priya, /^open$/);
  const sam = await open(ctx, `${base}/?name=sam&room=pi-club`, DESKTOP);
  await stateIs(sam, /^open$/);
  const lines = [
    [priya, 'Morning! The Pi in the library is up again.'],
    [sam, 'Nice. Same address as last week?'],
    [priya, 'Yes: http://pi.local:3000/?room=pi-club (send it to the class)'],
    [sam, '/me waves at the class'],
    [priya, '/msg sam can you bring the spare HDMI cable tomorrow?'],
    [sam, 'On it. <b>Tags</b> show as typed, by the way.'],
  ];
  for (const [who, text] of lines) {
    const before = await priya.locator('#log .line').count();
    await say(who, text);
    await until('the line on priya\'s page', async () => (await priya.locator('#log .line').count()) > before);
  }
  await line(priya, 'Tags', '.type-1').waitFor({ timeout: WAIT_MS });
  await line(priya, 'charger', '.history').waitFor({ timeout: WAIT_MS });
  await line(priya, 'HDMI', '.type-5').waitFor({ timeout: WAIT_MS });
  await line(priya, '* sam waves at the class').waitFor({ timeout: WAIT_MS });
  await priya.locator('#text').fill('/help');
  await shoot(priya, 'readme');
  await sam.close();
  await priya.close();
  return path.join(ARTIFACTS, 'readme.png');
}

// A server scripted here plays every event of docs/PROTOCOL.md to a page, and records what
// the page sends: tests the page alone, whatever the real server supports yet.
async function scripted(ctx, staticBase, shoot) {
  const page = await open(ctx, 'about:blank', DESKTOP);
  const sent = [];
  let socket;
  let connections = 0;
  const now = Date.now();
  const yesterday = { type: 1, event: 'message', name: 'zed', text: 'from yesterday', history: true, time: now - 86_400_000 };
  // Reconnects (the 2nd and 3rd sockets) replay the room's last lines, as a restarted
  // server with a history file does; the page must show each line once.
  const replay = (ws) => {
    ws.send(JSON.stringify({ type: 0, event: 'welcome', name: 'mocha', room: 'lobby', users: ['mocha'], time: now }));
    ws.send(JSON.stringify(yesterday));
    ws.send(JSON.stringify({ ...yesterday, text: 'said while you were away', time: now + 1 }));
    if (connections === 3) ws.send(JSON.stringify({ type: 1, event: 'message', name: 'zed', text: 'third time', time: now + 2 }));
  };
  await page.routeWebSocket(/:3000\//, (ws) => {
    connections++;
    if (connections > 3) return void ws.close({ code: 1011 }); // after that, stay down
    socket = ws;
    ws.onMessage((m) => sent.push(m));
    if (connections > 1) replay(ws);
  });
  await page.goto(`${staticBase}/?name=mock`);
  await until('the scripted socket', () => socket);
  await stateIs(page, /^open$/);
  const ev = (o) => socket.send(JSON.stringify({ info: '<b>never shown</b>', time: now, ...o }));
  ev({ type: 3, event: 'notice', code: 'name-taken', text: 'mock is taken: you are mock2' });
  ev({ type: 0, event: 'welcome', name: 'mock2', room: 'lobby', users: ['zed', 'mock2', 'yan'] });
  ev(yesterday);
  ev({ type: 0, event: 'enter', name: 'x<i>y</i>', room: 'lobby' });
  ev({ type: 1, event: 'message', name: 'zed', text: 'hello <script>window.__pwned=1</script>' });
  ev({ type: 1, event: 'action', name: 'yan', text: 'waves' });
  ev({ type: 5, event: 'private', from: 'zed', to: 'mock2', text: 'psst <i>secret</i>' });
  ev({ type: 4, event: 'rename', old: 'yan', name: 'yanni', room: 'lobby' });
  ev({ type: 2, event: 'leave', name: 'zed', room: 'lobby' });
  ev({ type: 3, event: 'notice', code: 'who', text: 'In lobby: mock2, wil, x<i>y</i>, yanni', users: ['mock2', 'wil', 'x<i>y</i>', 'yanni'] });
  // A classic server's line (type and HTML-escaped info only, like examples/broadcast.rs):
  // shown as the text it stands for, still as text.
  socket.send(JSON.stringify({ type: 1, info: 'user9: &lt;b&gt;bold&lt;/b&gt; &amp; &quot;q&quot; &#39;s&#39;' }));
  ev({ type: 3, event: 'notice', code: 'help', text: 'Commands:\n/nick NEW\n/me ACTION' });
  await line(page, 'Commands:', '.type-3').waitFor({ timeout: WAIT_MS });
  await line(page, `user9: <b>bold</b> & "q" 's'`, '.type-1').waitFor();

  const types = await page.locator('#log .line').evaluateAll((lis) => lis.map((li) => li.className));
  for (const t of [0, 1, 2, 3, 4, 5]) assert(types.some((c) => c.split(' ').includes('type-' + t)), `a type-${t} line: ${types}`);
  assert(await page.locator('#log .line', { hasText: 'never shown' }).count() === 0, '`info` is never used');
  assert(await page.locator('#log i, #log script').count() === 0, 'markup in names and texts makes no element');
  assert(await page.evaluate(() => window.__pwned) === undefined, 'nothing ran');
  await line(page, 'x<i>y</i> joined', '.type-0').waitFor();
  await line(page, '* yan waves', '.type-1').waitFor();
  assert(/private/i.test(await line(page, 'psst <i>secret</i>', '.type-5').textContent()), 'the private line says so');
  await line(page, 'yan is now known as yanni', '.type-4').waitFor();
  const old = line(page, 'from yesterday', '.history');
  const oldTime = await old.locator('time').textContent();
  assert(oldTime.length > 6, `a replay from another day shows its date: ${oldTime}`); // date + time
  assert(await page.locator('#name').inputValue() === 'mock2', 'the name field shows the name the server gave');
  const names = (await userNames(page)).join('|');
  assert(names === 'mock2 (you)|wil|x<i>y</i>|yanni', `people after enter, rename, leave, who: ${names}`);
  await shoot(page, 'scripted-all-types');

  await contrast(page, 'light');
  await contrast(page, 'dark');
  await page.emulateMedia({ colorScheme: 'dark' });
  await axe(page, 'every line type, dark');
  await shoot(page, 'scripted-all-types-dark');
  await page.emulateMedia({ colorScheme: null });

  await page.locator('#name').fill('mocha');
  await page.locator('#name').press('Enter');
  await until('the page to send /nick mocha', () => sent.includes('/nick mocha'));
  ev({ type: 4, event: 'rename', old: 'mock2', name: 'mocha', room: 'lobby' });
  await until('the people list to show mocha (you)', async () => (await userNames(page)).includes('mocha (you)'));
  await page.locator('#text').focus(); // blurring the field must not ask again
  await say(page, '//not a command'); // frames arrive in order: a second /nick comes first
  await until('a literal // line sent as typed', () => sent.includes('//not a command'));
  assert(sent.filter((m) => m.startsWith('/nick')).length === 1, `one /nick: ${sent}`);
  const long = 'x'.repeat(5000);
  await say(page, long);
  await line(page, 'too long', '.local').waitFor({ timeout: WAIT_MS });
  assert(!sent.includes(long) && (await page.locator('#text').inputValue()) === long, 'a too-long message is kept, not sent');

  await page.locator('#users button', { hasText: 'yanni' }).click();
  assert(await page.locator('#text').inputValue() === '/msg yanni ', 'clicking a name starts a private message');
  assert(await page.evaluate(() => document.activeElement.id) === 'text', '...with the focus in the message box');

  await socket.close({ code: 1001, reason: 'going away' });
  await stateIs(page, /^closed — reconnecting in [\d.]+ s$/);
  await line(page, 'said while you were away', '.history').waitFor({ timeout: RECONNECT_MS });
  await socket.close({ code: 1001 });
  await line(page, 'third time').waitFor({ timeout: RECONNECT_MS });
  for (const text of ['from yesterday', 'said while you were away']) {
    assert(await line(page, text).count() === 1, `a replay after a reconnect repeats no line: ${text}`);
  }
  assert(!page.problems.length, page.problems.join('; '));
  await page.close();
}

// ---------------------------------------------------------------- pages in --www
// Ordinary pages, as people write them, served by wschat from --www DIR (a copy of www/ plus
// the classic tutorial's raw page): no Content-Security-Policy, so their inline scripts and
// CDN scripts run. And the tutorial's socket.io page (www/socketio.html: the client from a
// CDN, io() with default options) from wschat and from python3 -m http.server.
async function pagesFromWww(ctx, base, staticBase, port, shoot) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wschat-www-'));
  cpSync(path.join(REPO, 'www'), dir, { recursive: true });
  copyFileSync(path.join(HERE, 'pages/classic.html'), path.join(dir, 'classic.html'));
  const wwwPort = await freePort();
  const www = await start('wschat --www', SERVER,
    ['--bind', '127.0.0.1', '--port', String(wwwPort), '--rate-limit', '0', '--www', dir], wwwPort);
  const wwwBase = `http://127.0.0.1:${wwwPort}`;
  let cdnBody = SIO_DIST;
  let cdnRequests = 0;
  await ctx.route(SIO_CDN, (route) => {
    cdnRequests++;
    return route.fulfill({ status: 200, contentType: 'text/javascript', body: cdnBody });
  });
  try {
    await check('the classic raw page, with its inline script, served from --www: two people chat', async () => {
      const [ann, ben] = [await open(ctx, `${wwwBase}/classic.html`, DESKTOP), await open(ctx, `${wwwBase}/classic.html`, DESKTOP)];
      assert(!ann.response.headers()['content-security-policy'], 'no Content-Security-Policy on a --www page');
      const said = (p, text) => p.locator('#messages div', { hasText: text });
      await said(ann, 'comes in !!!').nth(1).waitFor({ timeout: WAIT_MS }); // its own and ben's
      await ben.locator('#sendTxt').fill('hi from the classic page <b>x</b>');
      await ben.locator('#sendBtn').click();
      for (const p of [ann, ben]) await said(p, 'hi from the classic page <b>x</b>').waitFor({ timeout: WAIT_MS });
      assert(await ann.locator('#messages b').count() === 0, 'the line is escaped: no element from it');
      assert(await said(ann, 'hi from the classic page').getAttribute('class') === 'message', 'type 1 is a message');
      await ben.close();
      await said(ann, 'leaves.').waitFor({ timeout: WAIT_MS });
      assert(!ann.problems.length, ann.problems.join('; '));
      await shoot(ann, 'www-classic');
      await ann.close();
    });

    const sioUrls = {
      'the built-in copy': (name) => `${base}/socketio.html?name=${name}`,
      '--www': (name) => `${wwwBase}/socketio.html?name=${name}`,
      'python3 -m http.server': (name) => `${staticBase}/socketio.html?name=${name}&server=http://127.0.0.1:${port}`,
    };
    await check('the socket.io page\'s inline script and CDN script run: built-in copy, --www, http.server', async () => {
      for (const [where, url] of Object.entries(sioUrls)) {
        const before = cdnRequests;
        const p = await open(ctx, url('probe'), DESKTOP);
        assert(p.response.status() === 200, `${where}: ${p.response.status()}`);
        await until(`${where}: the inline script's socket`, () => p.evaluate(() => typeof io === 'function' && !!window.socket));
        assert(cdnRequests === before + 1, `${where}: the CDN script was fetched`);
        assert(!p.problems.length, `${where}: ${p.problems.join('; ')}`);
        await p.close();
      }
    });

    // Until long-polling lands, the same page over the WebSocket transport alone: the CDN
    // file wrapped so that io() defaults to transports: ['websocket']. Checks the page and
    // the relayed typing event now; the default-options case below is the real one.
    cdnBody = SIO_DIST + "\n;(function () { var io0 = window.io; window.io = function (u, o) {" +
      " if (typeof u === 'object') { o = u; u = undefined; }" +
      " return io0(u, Object.assign({ transports: ['websocket'] }, o)); }; })();\n";
    await check('the socket.io page over the websocket transport: two people chat, typing shows', async () => {
      for (const [where, url] of Object.entries(sioUrls)) await socketioChat(ctx, url, where, 'websocket', shoot);
    });
    cdnBody = SIO_DIST;

    await pendingCheck('the tutorial-style socket.io page, default options (long-polling, then the upgrade): two people chat, from --www and from python3 -m http.server',
      SOCKETIO_POLLING, 'needs Engine.IO long-polling (issue 14, items 1-3); set SOCKETIO_POLLING = true in tests/browser/run.mjs',
      async () => {
        for (const where of ['--www', 'python3 -m http.server']) await socketioChat(ctx, sioUrls[where], where, 'polling', shoot);
      });
  } finally {
    await ctx.unroute(SIO_CDN);
    await stop(www);
    rmSync(dir, { recursive: true, force: true });
  }
}

// Two people on the socket.io page: each sees the other come in, a message each way (markup
// shown as text), the typing line from the relayed custom event, and the leave. `first` is
// the transport the page starts on: with default options, polling, then the upgrade.
async function socketioChat(ctx, url, where, first, shoot) {
  const pages = [];
  const tag = where.replace(/\W/g, '').slice(0, 6);
  const [sia, sib] = [`sia-${first}-${tag}`, `sib-${first}-${tag}`];
  // Polls are counted from the first request on, per page: the upgrade can be over before
  // a page's own listener could be attached.
  const polls = new Map();
  const countPoll = (r) => {
    if (!/\/socket\.io\/\?(.*&)?transport=polling/.test(r.url())) return;
    const page = r.frame()?.page();
    if (page) polls.set(page, (polls.get(page) ?? 0) + 1);
  };
  ctx.on('request', countPoll);
  for (const name of [sia, sib]) { // one after the other: the first sees the second come in
    const p = await open(ctx, url(name), DESKTOP);
    // A browser may send the page's GET on a connection kept alive after a long-poll.
    assert(p.response.status() === 200, `${where}: GET ${url(name)} answered ${p.response.status()}`);
    pages.push(p);
    await stateIs(p, /^open$/);
  }
  ctx.off('request', countPoll);
  for (const p of pages) p.polls = polls.get(p) ?? 0;
  const [a, b] = pages;
  const li = (p, text) => p.locator('#log li', { hasText: text });
  await li(a, `${sib} comes in !!!`).waitFor({ timeout: WAIT_MS });
  for (const p of pages) {
    await until(`${where}: the ${first === 'polling' ? 'upgrade to ' : ''}websocket`,
      async () => (await p.locator('#transport').textContent()) === '(websocket)');
    if (first === 'polling') assert(p.polls > 0, `${where}: it long-polled first`);
    assert(p.sockets.some((u) => /\/socket\.io\/\?.*transport=websocket/.test(u)), `${where}: a WebSocket to /socket.io/: ${p.sockets}`);
  }
  await a.locator('#message').fill('hello <i>sib</i>');
  await b.locator("#typing", { hasText: `${sia} is typing` }).waitFor({ timeout: WAIT_MS }); // the relayed custom event
  await a.locator('#message').press('Enter');
  for (const p of pages) await li(p, `${sia}: hello <i>sib</i>`).waitFor({ timeout: WAIT_MS });
  await until(`${where}: the typing line cleared`, async () => (await b.locator('#typing').textContent()) === '');
  await b.locator('#message').fill('hi sia');
  await b.locator('#message').press('Enter');
  await li(a, `${sib}: hi sia`).waitFor({ timeout: WAIT_MS });
  assert(await a.locator('#log i').count() === 0, `${where}: markup in a message made an element`);
  await shoot(a, `socketio-${first}-${where.split(' ')[0].replace(/\W/g, '')}`);
  await b.close();
  await li(a, `${sib} leaves.`).waitFor({ timeout: WAIT_MS });
  assert(!a.problems.length, `${where}: ${a.problems.join('; ')}`);
  await a.close();
}

main().then(() => process.exit(0), (e) => {
  console.error(`\nFAILED: ${e.message}`);
  console.log(`browser: ${passed} passed, 1 failed${pending ? `, ${pending} pending` : ''}`);
  console.error(`(screenshots and server.log in ${ARTIFACTS})`);
  process.exit(1);
});
