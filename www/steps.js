// The tutorial's step pages (echo.html, scream.html, broadcast.html): connect to a WebSocket
// server, send text or binary messages, and watch every frame and event, with the socket's
// readyState shown as it changes. See TUTORIAL.md.
//
// Each page sets its step on <body>: data-example-port (where `cargo run --example NAME`
// listens) and data-wschat-path (the same service in wschat itself). Text from the network
// only ever reaches the page through textContent.
'use strict';

const STATE_NAMES = ['connecting', 'open', 'closing', 'closed']; // WebSocket.readyState 0..3
const STATE_CAUSES = [
  'new WebSocket(url): the TCP connection and the HTTP Upgrade handshake are under way',
  'the server answered 101 Switching Protocols: frames can flow both ways',
  'a Close frame was sent or received: the closing handshake is under way',
  'the TCP connection is gone (or never opened)',
];
// RFC 6455 section 7.4.1, plus the two codes a browser reports but no frame ever carries.
const CLOSE_CODES = {
  1000: 'normal closure',
  1001: 'going away (server shutting down, or page left)',
  1002: 'protocol error',
  1003: 'unsupported data (e.g. binary where text is expected)',
  1005: 'no status: the Close frame carried no code',
  1006: 'abnormal closure: the connection dropped without a Close frame',
  1007: 'invalid payload (e.g. text that is not UTF-8)',
  1008: 'policy violation',
  1009: 'message too big',
  1011: 'internal server error',
};
const MAX_LOG_LINES = 500; // older lines are removed, so a long session stays light
const HEX_PREVIEW_BYTES = 32;
const POLL_MS = 50; // readyState has no change event: look at it this often while connected

const $ = (id) => document.getElementById(id);
const body = document.body;
const params = new URLSearchParams(location.search);
const servedByWschat = Boolean(window.WSCHAT_CONFIG && window.WSCHAT_CONFIG.servedByWschat);
const examplePort = body.dataset.examplePort;
const wschatPath = body.dataset.wschatPath;

const urlField = $('url');
const stateOut = $('state');
const log = $('log');
const message = $('message');
const binary = $('binary');

let ws = null; // the current socket; events of older sockets are ignored
let shownState = 3;
let pollTimer = 0;

// Where `cargo run --example ...` listens: this page's host (localhost when opened as a file).
function exampleUrl() {
  return 'ws://' + (location.hostname || 'localhost') + ':' + examplePort + '/';
}

// The same service inside wschat, on the origin that served this page.
function wschatUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return scheme + '//' + location.host + wschatPath;
}

function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

// Bytes a frame takes on the wire: 2 header bytes, 2 or 8 more for a long payload, and the
// 4-byte masking key that every client-to-server frame carries (server frames have none).
function wireSize(payloadBytes, fromClient) {
  const header = payloadBytes < 126 ? 2 : payloadBytes < 65536 ? 4 : 10;
  const mask = fromClient ? 4 : 0;
  return (header + mask + payloadBytes) + ' bytes on the wire: ' + header + ' header' +
    (fromClient ? ' + 4 mask key' : '') + ' + ' + payloadBytes + ' payload' +
    (fromClient ? '' : ' (a server never masks)');
}

function hex(bytes) {
  const shown = Array.from(bytes.slice(0, HEX_PREVIEW_BYTES),
    (b) => b.toString(16).padStart(2, '0'));
  return shown.join(' ') + (bytes.length > HEX_PREVIEW_BYTES ? ' …' : '');
}

function clock() {
  const d = new Date();
  return d.toTimeString().slice(0, 8) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

// One log line: kind is 'sent', 'received', 'event' or 'problem'; detail is optional.
function note(kind, summary, detail) {
  const li = document.createElement('li');
  li.className = kind;
  const time = document.createElement('time');
  time.textContent = clock();
  const head = document.createElement('span');
  head.className = 'summary';
  head.textContent = summary;
  li.append(time, ' ', head);
  if (detail !== undefined) {
    const pre = document.createElement('span');
    pre.className = 'detail';
    pre.textContent = detail;
    li.append(pre);
  }
  log.append(li);
  while (log.children.length > MAX_LOG_LINES) log.firstElementChild.remove();
  li.scrollIntoView({ block: 'nearest' });
}

// Shows the current readyState, and logs each change with what caused it.
function showState() {
  const now = ws ? ws.readyState : 3;
  if (now !== shownState) {
    note('event', 'readyState ' + shownState + ' → ' + now + ' (' + STATE_NAMES[now] + ')',
      STATE_CAUSES[now]);
    shownState = now;
  }
  stateOut.textContent = now + ' · ' + STATE_NAMES[now];
  stateOut.className = 'state state-' + STATE_NAMES[now];
  const open = now === 1;
  const idle = now === 3;
  $('connect').disabled = !idle;
  $('disconnect').disabled = idle || now === 2;
  message.disabled = !open;
  binary.disabled = !open;
  $('send').disabled = !open;
  urlField.readOnly = !idle;
  if (idle) {
    clearInterval(pollTimer);
    pollTimer = 0;
  } else if (!pollTimer) {
    pollTimer = setInterval(showState, POLL_MS);
  }
}

function connect() {
  const url = urlField.value.trim();
  let sock;
  try {
    sock = new WebSocket(url);
  } catch (e) { // not a ws: or wss: URL: no socket, no events
    note('problem', 'cannot connect: ' + e.message);
    return;
  }
  ws = sock;
  sock.binaryType = 'arraybuffer';
  note('event', 'new WebSocket(' + JSON.stringify(url) + ')');
  showState();
  sock.onopen = () => {
    if (sock !== ws) return;
    note('event', 'open', 'subprotocol: ' + (sock.protocol || 'none') +
      ', extensions: ' + (sock.extensions || 'none'));
    showState();
  };
  sock.onmessage = (e) => {
    if (sock !== ws) return;
    if (typeof e.data === 'string') {
      const n = utf8Length(e.data);
      note('received', '← text, ' + wireSize(n, false), e.data + classic(e.data));
    } else {
      const bytes = new Uint8Array(e.data);
      note('received', '← binary, ' + wireSize(bytes.length, false), hex(bytes));
    }
    showState();
  };
  sock.onerror = () => {
    if (sock !== ws) return;
    // Browsers say nothing more, on purpose (a page must not probe networks through it);
    // the close event that always follows has the code.
    note('problem', 'error', 'no details are given to pages: see the close event that follows');
    showState();
  };
  sock.onclose = (e) => {
    if (sock !== ws) return;
    const meaning = CLOSE_CODES[e.code] || (e.code >= 4000 ? 'application-defined' : 'other');
    note('event', 'close: code ' + e.code + ' (' + meaning + ')',
      'reason: ' + JSON.stringify(e.reason) + ', wasClean: ' + e.wasClean);
    showState();
  };
}

// For the chat step: a classic {"type","info"} line, explained.
function classic(text) {
  if (body.dataset.step !== 'broadcast') return '';
  try {
    const m = JSON.parse(text);
    const kinds = ['enter', 'message', 'leave', 'notice', 'rename', 'private message'];
    if (!m || typeof m.type !== 'number') return '';
    const event = typeof m.event === 'string' ? ', event "' + m.event + '"' : '';
    return '\n(type ' + m.type + ' = ' + (kinds[m.type] || 'unknown') + event + ')';
  } catch { /* not JSON */ }
  return '';
}

function send() {
  const text = message.value;
  if (!ws || ws.readyState !== 1) return;
  if (binary.checked) {
    const bytes = new TextEncoder().encode(text);
    ws.send(bytes);
    note('sent', '→ binary, ' + wireSize(bytes.length, true), hex(bytes));
  } else {
    ws.send(text);
    note('sent', '→ text, ' + wireSize(utf8Length(text), true), text);
  }
  message.value = '';
  message.focus();
}

$('connect-form').addEventListener('submit', (e) => {
  e.preventDefault();
  connect();
});
$('disconnect').addEventListener('click', () => {
  if (!ws) return;
  ws.close(1000, 'bye from the page');
  note('event', 'ws.close(1000, "bye from the page")', 'our Close frame is on its way');
  showState();
});
$('send-form').addEventListener('submit', (e) => {
  e.preventDefault();
  send();
});
$('clear').addEventListener('click', () => log.replaceChildren());
$('use-example').addEventListener('click', () => { urlField.value = exampleUrl(); });
const useWschat = $('use-wschat');
useWschat.hidden = !servedByWschat;
useWschat.addEventListener('click', () => { urlField.value = wschatUrl(); });

urlField.value = params.get('ws') || (servedByWschat ? wschatUrl() : exampleUrl());
showState();
