// The wschat page: connects to the chat, shows each event as a line, sends what is typed.
// The protocol is docs/PROTOCOL.md. Text from the network only ever reaches the page through
// textContent: `info` (HTML-escaped for old pages that use innerHTML) is never used.
'use strict';

const FIRST_RETRY_MS = 500;    // first reconnect delay; doubles on each failure...
const MAX_RETRY_MS = 10000;    // ...up to this, and is reset once a connection opens
const MAX_LINES = 1000;        // older lines are dropped, so a week-long tab stays light
// The server's --max-message-bytes (its default unless config.js says otherwise): a larger
// message makes it close the connection (1009), so the page keeps it in the input instead.
const MAX_MESSAGE_BYTES = (window.WSCHAT_CONFIG && window.WSCHAT_CONFIG.maxMessageBytes) || 4096;
const STATES = ['connecting', 'open', 'closing', 'closed']; // WebSocket.readyState 0..3

const $ = (id) => document.getElementById(id);
const log = $('log'), state = $('state'), input = $('text');
const nameField = $('name'), roomField = $('room');
const params = new URLSearchParams(location.search);

let ws = null;                 // the current socket; events of older ones are ignored
let retryDelay = FIRST_RETRY_MS, retryTimer = 0;
let joined = false;            // this connection has seen its own join line
let rich = false;              // the server sends `welcome` (rooms, commands, history)
let me = '';                   // our name as the server knows it (it may add a suffix)
let wanted = params.get('name') || load('wschat.name') || ''; // the name we ask for
let room = params.get('room') || '';
let asked = '';                // a name sent with /nick, until the server answers
let lastSeen = 0;              // time of the newest chat line shown: replays up to it are skipped
let following = true;          // the log follows new lines (the reader is at its bottom)
const users = new Map();       // lower-cased name -> name: names are unique ignoring case

function load(key) { try { return localStorage.getItem(key); } catch { return null; } }
function save(key, v) { try { localStorage.setItem(key, v); } catch { /* private mode */ } }

// ?ws= wins; else wschat itself served the page (same origin); else a plain static server
// serves www/ and the chat runs on port 3000 of the same host.
function wsUrl() {
  let base = params.get('ws');
  if (!base) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ours = window.WSCHAT_CONFIG && window.WSCHAT_CONFIG.servedByWschat;
    base = scheme + '//' + (ours ? location.host : (location.hostname || 'localhost') + ':3000') + '/';
  }
  const url = new URL(base, location.href);
  if (wanted) url.searchParams.set('name', wanted);
  if (room) url.searchParams.set('room', room);
  return url.href;
}

function showState(text) {
  const word = ws ? STATES[ws.readyState] : 'closed';
  state.textContent = text || word;
  state.className = 'state-' + word;
  $('retry').hidden = word !== 'closed';
}

function connect() {
  clearTimeout(retryTimer);
  joined = false;
  let sock;
  try {
    sock = new WebSocket(wsUrl());
  } catch (e) { // a malformed ?ws=: retrying would not help
    ws = null;
    note('Cannot connect to ' + params.get('ws') + ': ' + e.message);
    showState();
    return;
  }
  ws = sock;
  showState();
  sock.onopen = () => { if (sock === ws) { retryDelay = FIRST_RETRY_MS; showState(); } };
  sock.onmessage = (e) => { if (sock === ws) receive(e.data); };
  sock.onclose = () => {
    if (sock !== ws) return; // replaced on purpose (room or name change)
    users.clear();
    showUsers();
    showState('closed — reconnecting in ' + Math.round(retryDelay / 100) / 10 + ' s');
    retryTimer = setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, MAX_RETRY_MS);
  };
}

// Drops the current socket (its events are ignored from now on) and opens a new one at once.
function reconnect() {
  const old = ws;
  ws = null;
  if (old) old.close(1000);
  retryDelay = FIRST_RETRY_MS;
  connect();
}

function receive(data) {
  let m;
  try { m = JSON.parse(data); } catch { return; }
  if (!m || typeof m !== 'object') return;
  if (!joined && m.type === 0) { // our own join line: `welcome`, or `enter` from older servers
    joined = true;
    rich = m.event === 'welcome';
    setMe(m.name);
    users.clear();
    (Array.isArray(m.users) ? m.users : [m.name]).forEach(addUser);
    if (m.room && m.room !== (room || 'lobby')) setRoom(m.room); // the server refused ours
  } else if (m.event === 'enter') {
    addUser(m.name);
  } else if (m.event === 'leave') {
    users.delete(String(m.name).toLowerCase());
  } else if (m.event === 'rename') {
    users.delete(String(m.old).toLowerCase());
    addUser(m.name);
    if (m.old === me) setMe(m.name);
  } else if (m.event === 'notice' && m.code === 'who' && Array.isArray(m.users)) {
    users.clear();
    m.users.forEach(addUser);
  } else if (m.event === 'notice' && /^name-/.test(m.code || '')) {
    nameField.value = me; // a refused /nick: show the name we still have
    asked = '';
  }
  showUsers();
  // A reconnect replays the room's last lines: show only those not seen yet (missed ones).
  if (m.history && m.time <= lastSeen) return;
  if (m.event === 'message' || m.event === 'action') lastSeen = Math.max(lastSeen, m.time);
  show(m);
}

// One event as one line: [time] then parts, each a string or [className, string].
function show(m) {
  // A classic server (the tutorial's, examples/broadcast.rs) sends only type and info.
  const classic = !m.event && typeof m.info === 'string';
  const name = String(m.name || ''), text = classic ? unescapeInfo(m.info) : String(m.text || '');
  const where = m.room || 'lobby';
  const parts = {
    welcome: () => ['Welcome to ' + where + ', ', ['who', name], '. ' + here(m.users)],
    enter: () => [['who', name], ' joined'],
    leave: () => [['who', name], ' left'],
    message: () => [['who', name], ': ', ['text', text]],
    action: () => ['* ', ['who', name], ' ', ['text', text]],
    rename: () => [['who', String(m.old)], ' is now known as ', ['who', name]],
    private: () => [['badge', 'private'], ' ', ['who', String(m.from)], ' → ',
      ['who', String(m.to)], ': ', ['text', text]],
  }[m.event];
  const row = document.createElement('div');
  row.className = 'line type-' + (Number(m.type) || 0) + (m.history ? ' history' : '') +
    (m.local ? ' local' : '');
  row.appendChild(timeOf(m.time, m.history));
  const spans = parts ? parts() : [['text', text]];
  if (m.history) spans.unshift(['sr-only', 'earlier: ']); // the fading is not heard
  for (const p of spans) {
    const span = document.createElement('span');
    if (Array.isArray(p)) { span.className = p[0]; span.textContent = p[1]; } else span.textContent = p;
    row.appendChild(span);
  }
  log.appendChild(row);
  while (log.children.length > MAX_LINES) log.firstChild.remove();
  if (following) log.scrollTop = log.scrollHeight;
}

// The log follows new lines while the reader is at its bottom, not while they read back;
// it stays at the bottom when it shrinks (a phone's keyboard opens, the state line grows).
log.addEventListener('scroll', () => {
  following = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
});
new ResizeObserver(() => { if (following) log.scrollTop = log.scrollHeight; }).observe(log);

function here(list) {
  const n = Array.isArray(list) ? list.length : 1;
  return n === 1 ? 'You are the only one here.' : n + ' people are here.';
}

function timeOf(ms, withDay) {
  const d = new Date(typeof ms === 'number' ? ms : Date.now());
  const el = document.createElement('time');
  el.dateTime = d.toISOString();
  el.title = d.toLocaleString();
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const today = d.toDateString() === new Date().toDateString();
  el.textContent = withDay && !today ? d.toLocaleDateString() + ' ' + hm : hm;
  return el;
}

// `info` is HTML-escaped for pages that use innerHTML; this page shows text, so undo the
// five entities (textContent then shows `<b>` as typed, and runs nothing).
function unescapeInfo(info) {
  return info.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'").replace(/&amp;/g, '&');
}

// A line from the page itself (not the server), styled as a notice.
function note(text) { show({ type: 3, event: 'notice', text, local: true }); }

function addUser(name) { if (name) users.set(String(name).toLowerCase(), String(name)); }

function showUsers() {
  const list = $('users');
  list.replaceChildren();
  const names = [...users.values()].sort((a, b) => a.localeCompare(b));
  for (const name of names) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = name === me ? name + ' (you)' : name;
    b.title = 'Send ' + name + ' a private message';
    b.addEventListener('click', () => { input.value = '/msg ' + name + ' '; input.focus(); });
    li.appendChild(b);
    list.appendChild(li);
  }
  $('count').textContent = names.length;
}

function setMe(name) {
  me = String(name || '');
  asked = '';
  if (document.activeElement !== nameField) nameField.value = me;
}

function setRoom(r) {
  room = r;
  roomField.value = r;
  document.title = (r || 'lobby') + ' — wschat';
  updateUrl();
  showShare();
}

// Opened on the server's machine (localhost), the page cannot show an address that works
// for others; wschat lists this machine's in config.js for such a visitor alone (the first
// is the one `wschat --qr` draws). The link carries the room, so others land in it.
function showShare() {
  const urls = (window.WSCHAT_CONFIG && window.WSCHAT_CONFIG.shareUrls) || [];
  if (!urls.length) return;
  const url = new URL(urls[0]);
  if (room) url.searchParams.set('room', room);
  const link = $('share-url');
  link.href = url.href;
  link.textContent = url.href;
  link.title = urls.length > 1 ? 'Also: ' + urls.slice(1).join(', ') : '';
  $('share').hidden = false;
}

// Keeps the address shareable and reload-proof: ?room= always, ?name= if the URL had one.
function updateUrl() {
  const url = new URL(location.href);
  if (room) url.searchParams.set('room', room); else url.searchParams.delete('room');
  if (url.searchParams.has('name')) url.searchParams.set('name', wanted);
  history.replaceState(null, '', url);
}

$('send').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = input.value;
  if (!text.trim()) return;
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    note('Not connected: your message stays in the box until the state reads "open".');
  } else if (new TextEncoder().encode(text).length > MAX_MESSAGE_BYTES) {
    note('That message is too long (over ' + MAX_MESSAGE_BYTES + ' bytes): shorten it.');
  } else {
    ws.send(text);
    input.value = '';
  }
});

// A name change: servers with rooms rename in place (/nick); older ones need a new connection.
// Enter fires both `change` and `submit`: `asked` keeps the second from asking again.
function changeName() {
  const v = nameField.value.trim();
  if (!v) { nameField.value = me; return; }
  if (v === me || v === asked) return;
  wanted = v;
  save('wschat.name', v);
  updateUrl();
  if (!ws || ws.readyState !== WebSocket.OPEN) return; // the next connection asks for it
  asked = v;
  if (rich && joined) ws.send('/nick ' + v); else reconnect();
}
nameField.addEventListener('change', changeName);
$('name-form').addEventListener('submit', (e) => { e.preventDefault(); changeName(); });

$('room-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const r = roomField.value.trim();
  if (r === room && ws && ws.readyState === WebSocket.OPEN) return;
  log.replaceChildren(); // a new room starts a new conversation
  lastSeen = 0;
  setRoom(r);
  reconnect();
});

$('retry').addEventListener('click', reconnect);
window.addEventListener('online', () => { if (!ws || ws.readyState === WebSocket.CLOSED) reconnect(); });

// The people list is open beside the log on wide screens, folded above it on phones.
$('people').open = matchMedia('(min-width: 48rem)').matches;
nameField.value = wanted;
setRoom(room);
connect();
