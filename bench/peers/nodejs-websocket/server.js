// The classic nodejs-websocket chat: every line to every connection as
// {"type":0|1|2,"info":...}, broadcast with server.connections.forEach(conn => conn.sendText()).
// Usage: node server.js PORT
'use strict';
const ws = require('nodejs-websocket');

const port = Number(process.argv[2] || 8080);
let nextUser = 1;

function broadcast(type, info) {
  const line = JSON.stringify({ type, info });
  server.connections.forEach((conn) => conn.sendText(line));
}

const server = ws.createServer((conn) => {
  const name = `user${nextUser++}`;
  broadcast(0, `${name} comes in !!!`);
  conn.on('text', (text) => broadcast(1, `${name}: ${text}`));
  conn.on('close', () => broadcast(2, `${name} leaves.`));
  conn.on('error', () => {});
});
server.listen(port, '127.0.0.1');
