module github.com/meshgen/gateway/test/load

go 1.26.8

require (
	github.com/gorilla/websocket v1.5.3
	golang.org/x/image v0.48.0
)
