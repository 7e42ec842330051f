// A broadcast chat on npm `ws`: wschat's JSON events (docs/PROTOCOL.md, classic subset), every
// message to everyone including its sender. Usage: node server.js PORT
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2] || 8080);
const wss = new WebSocketServer({ host: '127.0.0.1', port });
let nextUser = 1;

function broadcast(event) {
  event.time = Date.now();
  const data = JSON.stringify(event);
  for (const client of wss.clients) {
    if (client.readyState === WebSocket.OPEN) client.send(data);
  }
}

wss.on('connection', (ws) => {
  const name = `user${nextUser++}`;
  broadcast({ type: 0, info: `${name} comes in !!!`, event: 'enter', name });
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    broadcast({ type: 1, info: `${name}: ${text}`, event: 'message', name, text });
  });
  ws.on('close', () => broadcast({ type: 2, info: `${name} leaves.`, event: 'leave', name }));
  ws.on('error', () => {});
});
