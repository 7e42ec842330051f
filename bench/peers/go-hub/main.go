// A chat hub in the style of gorilla/websocket's examples/chat, speaking wschat's JSON
// events. Usage: go-hub -addr 127.0.0.1:PORT
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
)

var addr = flag.String("addr", "127.0.0.1:8080", "http service address")

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func main() {
	flag.Parse()
	hub := newHub()
	go hub.run()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { serveWs(hub, w, r) })
	log.Fatal(http.ListenAndServe(*addr, nil))
}
