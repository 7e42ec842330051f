package main

// Hub owns the set of clients and moves messages between channels. It is the only goroutine
// that touches the set; it never touches a socket.
type Hub struct {
	clients    map[*Client]bool
	broadcast  chan []byte
	register   chan *Client
	unregister chan *Client
}

func newHub() *Hub {
	return &Hub{
		clients:    make(map[*Client]bool),
		broadcast:  make(chan []byte),
		register:   make(chan *Client),
		unregister: make(chan *Client),
	}
}

// send queues message for every client; a client whose queue is full is stuck: drop it.
func (h *Hub) send(message []byte) {
	for client := range h.clients {
		select {
		case client.send <- message:
		default:
			close(client.send)
			delete(h.clients, client)
		}
	}
}

func (h *Hub) run() {
	for {
		select {
		case client := <-h.register:
			h.clients[client] = true
			h.send(event(0, "enter", client.name, client.name+" comes in !!!", ""))
		case client := <-h.unregister:
			if _, ok := h.clients[client]; ok {
				delete(h.clients, client)
				close(client.send)
				h.send(event(2, "leave", client.name, client.name+" leaves.", ""))
			}
		case message := <-h.broadcast:
			h.send(message)
		}
	}
}
