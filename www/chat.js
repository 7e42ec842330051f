// The chat page: connects, shows each event as a line, sends what is typed.
'use strict';
const params = new URLSearchParams(location.search);
function wsUrl() {
  if (params.get('ws')) return params.get('ws');
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const host = window.WSCHAT_CONFIG && window.WSCHAT_CONFIG.servedByWschat
    ? location.host : (location.hostname || 'localhost') + ':3000';
  const name = params.get('name');
  return scheme + '//' + host + '/' + (name ? '?name=' + encodeURIComponent(name) : '');
}
const STATES = ['connecting', 'open', 'closing', 'closed'];
const log = document.getElementById('log');
const state = document.getElementById('state');
let ws; let backoff = 500;
function show(type, text) {
  const li = document.createElement('li');
  li.className = 'type-' + type;
  li.textContent = text;
  log.appendChild(li);
  li.scrollIntoView({ block: 'end' });
}
function connect() {
  ws = new WebSocket(wsUrl());
  state.textContent = STATES[ws.readyState];
  ws.onopen = () => { backoff = 500; state.textContent = STATES[ws.readyState]; };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    const text = m.event === 'message' ? m.name + ': ' + m.text
      : m.event === 'enter' ? m.name + ' comes in !!!'
      : m.event === 'leave' ? m.name + ' leaves.' : (m.text || '');
    show(m.type, text);
  };
  ws.onclose = () => {
    state.textContent = 'closed — reconnecting in ' + Math.round(backoff / 1000) + ' s';
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10000);
  };
}
document.getElementById('send').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('text');
  if (ws && ws.readyState === 1 && input.value) { ws.send(input.value); input.value = ''; }
});
connect();
