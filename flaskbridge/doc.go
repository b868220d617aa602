// Package flaskbridge lets the existing Python backend keep every
// socketio.emit(...) it has: it subscribes to the Flask-SocketIO message
// queue (a Redis pub/sub channel, "flask-socketio" by default) and does
// what each message asks to this node's Socket.IO clients.
//
// Every gateway node that serves Socket.IO runs its own Bridge on the
// channel, exactly as every python-socketio host does with its
// RedisManager: each node reads every message and acts on its own clients
// only. Nothing goes through the gateway's own bus, and the gateway never
// publishes on the channel, so there is no echo of its own messages to
// filter out.
//
// # What it owns
//
// The subscription (a dedicated go-redis PubSub connection), its
// re-establishment, the health of it, and the mapping of each decoded
// message onto the Emitter (*gateway.Server). Decoding and validating a
// message, JSON or pickle, is flaskqueue's job; rooms, sockets and packet
// encoding are the gateway's.
//
// # Delivery guarantee
//
// At most once per node, exactly like Flask-SocketIO itself: Redis pub/sub
// keeps nothing, so a message published while a node's subscription is
// down (Redis unreachable, connection killed, node restarting) is lost for
// that node and for its clients; nodes whose subscription was up deliver
// it. Within one node, messages are handled one at a time in the order
// Redis delivered them.
//
// The bridge adds no loss of its own on top of that. It reads with
// PubSub.Receive in a loop, not with PubSub.Channel, whose goroutine drops
// a message when the Go channel stays full for a minute (60 s by default);
// here nothing is buffered in between, and back-pressure goes to the Redis
// server's output buffer for the subscriber. A subscriber that falls
// behind by more than Redis's client-output-buffer-limit for pubsub
// (32 MiB hard, or 8 MiB for 60 s by default) is disconnected by Redis,
// which the bridge reports and recovers from like any other outage.
//
// The subscription is re-established by itself: after a connection error
// go-redis redials and resubscribes on the next read, and the bridge keeps
// reading with a capped exponential backoff (100 ms to MaxRetryDelay). A
// subscribed connection that goes silent without an error (a half-open
// TCP connection) is pinged after PingInterval of silence and closed and
// redialled after three intervals; before the subscription is confirmed,
// a read blocked for a minute is abandoned the same way. The loss of the subscription is logged
// once at WARN, and its return once at INFO (with the outage's length);
// the attempts in between log at DEBUG.
//
// Health is an error until Redis confirms the first subscription and
// whenever the subscription is not confirmed since (lost, redialling),
// saying why; use it for readiness, since a node that is not subscribed
// silently misses the Python backend's events.
//
// # What each method does
//
// Only namespace "/" is served; a message for any other namespace is
// dropped (counted, DEBUG log), since the gateway has no other namespace.
//
//   - emit: Emitter.Emit to the message's room, or list of rooms, or, when
//     the room is None, to every client of this node; skip_sid (one sid
//     or a list) becomes except. The arguments are flaskqueue's
//     normalisation of "data" (a tuple is the argument list, None no
//     argument, anything else one argument; JSON messages carry the list),
//     each JSON-encoded once for every recipient. An emit carrying bytes
//     (a Socket.IO binary attachment) or a NaN/Inf float is dropped with a
//     WARN: the gateway does not forward binary. An emit that asks for a
//     callback is emitted without asking the client for an ack (the
//     answer would have to be published back on the channel).
//   - close_room: Emitter.CloseRoom: this node's clients leave the room.
//   - enter_room, leave_room, disconnect: addressed to one sid; done when
//     that sid is connected to this node (the Emitter's bool tells),
//     ignored silently (DEBUG) otherwise, since the node holding it acts.
//     Flask-SocketIO 5.3 publishes disconnect for a sid it does not hold;
//     enter_room and leave_room exist from python-socketio 5.8.
//   - callback: ignored. It carries a client's ack back to the Python host
//     that emitted with a callback; no node of the gateway registers one.
//
// # Refused messages
//
// A pickle that would import, construct or call anything
// (flaskqueue.ErrUnsafePickle) is refused as a whole, nothing in it is
// evaluated, and it is logged at WARN once with the reason and a short
// quoted prefix of the message (never the whole message): only
// Flask-SocketIO should write on this channel, so it means someone else
// can. Malformed messages, unknown methods, messages above MaxMessageBytes
// or beyond the decoding limits are logged at WARN and dropped. In every
// case the bridge goes on with the next message. Stats counts every
// message received and what became of it.
package flaskbridge
