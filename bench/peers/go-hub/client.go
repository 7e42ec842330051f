package main

import (
	"bytes"
	"encoding/json"
	"log"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// Time allowed to write a message to the peer.
	writeWait = 10 * time.Second
	// Time allowed to read the next pong message from the peer.
	pongWait = 60 * time.Second
	// Send pings to peer with this period. Must be less than pongWait.
	pingPeriod = (pongWait * 9) / 10
	// Maximum message size allowed from peer, in bytes (wschat's limit).
	maxMessageSize = 4096
	// Messages queued per client; a full queue means the client is stuck.
	sendQueue = 256
)

var (
	newline  = []byte{'\n'}
	space    = []byte{' '}
	upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	lastUser int64
)

// Client is the middleman between one websocket connection and the hub.
type Client struct {
	hub  *Hub
	conn *websocket.Conn
	send chan []byte
	name string
}

// event encodes one chat event as wschat does (docs/PROTOCOL.md, classic subset).
func event(typ int, kind, name, info, text string) []byte {
	b, _ := json.Marshal(struct {
		Type  int    `json:"type"`
		Info  string `json:"info"`
		Event string `json:"event"`
		Name  string `json:"name"`
		Text  string `json:"text,omitempty"`
		Time  int64  `json:"time"`
	}{typ, info, kind, name, text, time.Now().UnixMilli()})
	return b
}

// readPump is the connection's only reader: every text becomes a message to the hub.
func (c *Client) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessageSize)
	c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { c.conn.SetReadDeadline(time.Now().Add(pongWait)); return nil })
	for {
		_, message, err := c.conn.ReadMessage()
		if err != nil {
			if websocket.IsUnexpectedCloseError(err, websocket.CloseGoingAway, websocket.CloseAbnormalClosure) {
				log.Printf("error: %v", err)
			}
			break
		}
		text := string(bytes.TrimSpace(bytes.Replace(message, newline, space, -1)))
		c.hub.broadcast <- event(1, "message", c.name, c.name+": "+text, text)
	}
}

// writePump is the connection's only writer: queued messages go out coalesced into one
// frame, separated by newlines.
func (c *Client) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case message, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			w, err := c.conn.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			w.Write(message)
			n := len(c.send)
			for i := 0; i < n; i++ {
				w.Write(newline)
				w.Write(<-c.send)
			}
			if err := w.Close(); err != nil {
				return
			}
		case <-ticker.C:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// serveWs upgrades the request and starts the client's two pumps.
func serveWs(hub *Hub, w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		log.Println(err)
		return
	}
	name := "user" + itoa(atomic.AddInt64(&lastUser, 1))
	client := &Client{hub: hub, conn: conn, send: make(chan []byte, sendQueue), name: name}
	client.hub.register <- client
	go client.writePump()
	go client.readPump()
}
