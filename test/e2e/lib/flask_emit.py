#!/usr/bin/python3
"""Emit through the REAL Flask-SocketIO message queue, as the Python backend does.

Run with Debian's interpreter (Debian 12: Flask-SocketIO 5.3.2,
python-socketio 5.7.2, which pickle each message onto the Redis channel):

    /usr/bin/python3 test/e2e/lib/flask_emit.py --redis redis://127.0.0.1:6379/0 \
        [--channel flask-socketio] [--wait-subscribers N] [INSTRUCTION ...]

This is a write-only SocketIO(message_queue=...) -- exactly what a Flask
worker or a Celery task that only emits creates -- so every instruction goes
through Flask-SocketIO's and python-socketio's own code down to
RedisManager._publish (pickle.dumps + PUBLISH).

Each INSTRUCTION is one JSON object; with none on the command line they are
read from stdin, one per line (blank lines skipped). Forms:

    {"event": "log_line", "data": {...}, "to": "project_1"}
    {"event": "x", "data": {...}, "to": ["project_1", "batch_2"]}   # list of rooms
    {"event": "x", "data": {...}}                                   # everyone
    {"event": "x", "data": {...}, "room": "r"}                      # the room= alias
    {"event": "x", "args": ["a", 1], "to": "r"}                     # several arguments (a tuple)
    {"event": "x", "data": {...}, "to": "r", "skip_sid": "sid" | ["sid", ...]}
    {"event": "x", "data": {...}, "namespace": "/other"}
    {"method": "close_room", "room": "r"}
    {"method": "disconnect", "sid": "abc"}                          # a sid this process does not hold

"data" absent means no argument (emit(event)). After each instruction one
line is written to stdout: {"ok": true, "n": <index>}. Any failure exits 1
with the reason on stderr.

--wait-subscribers N waits (at most 10 s) until N clients are subscribed to
the channel before the first instruction, so a test does not publish into
the void.
"""

import argparse
import json
import sys
import time

from flask_socketio import SocketIO


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis", required=True, help="redis://host:port/db")
    p.add_argument("--channel", default=None,
                   help="message-queue channel (default: Flask-SocketIO's, flask-socketio)")
    p.add_argument("--wait-subscribers", type=int, default=0)
    p.add_argument("instructions", nargs="*")
    return p.parse_args()


def instructions(args):
    if args.instructions:
        for raw in args.instructions:
            yield json.loads(raw)
        return
    for line in sys.stdin:
        line = line.strip()
        if line:
            yield json.loads(line)


def wait_subscribers(socketio, channel, want):
    redis = socketio.server.manager.redis
    deadline = time.monotonic() + 10
    while True:
        (_, have), = redis.pubsub_numsub(channel)
        if have >= want:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {have} of {want} subscribers on {channel!r} after 10 s")
        time.sleep(0.02)


def run(socketio, ins):
    method = ins.get("method", "emit")
    namespace = ins.get("namespace", "/")
    if method == "emit":
        if "args" in ins:
            positional = (tuple(ins["args"]),)
        elif "data" in ins:
            positional = (ins["data"],)
        else:
            positional = ()
        kwargs = {"namespace": namespace}
        for key in ("to", "room", "skip_sid"):
            if key in ins:
                kwargs[key] = ins[key]
        socketio.emit(ins["event"], *positional, **kwargs)
    elif method == "close_room":
        socketio.close_room(ins["room"], namespace=namespace)
    elif method == "disconnect":
        # Not connected to this write-only process, so python-socketio
        # publishes a "disconnect" message for whichever server holds it.
        socketio.server.disconnect(ins["sid"], namespace=namespace)
    else:
        raise SystemExit(f"unknown method {method!r}")


def main():
    args = parse_args()
    kwargs = {"message_queue": args.redis, "async_mode": "threading"}
    if args.channel:
        kwargs["channel"] = args.channel
    socketio = SocketIO(**kwargs)
    channel = socketio.server.manager.channel
    if args.wait_subscribers:
        wait_subscribers(socketio, channel, args.wait_subscribers)
    for n, ins in enumerate(instructions(args)):
        run(socketio, ins)
        print(json.dumps({"ok": True, "n": n}), flush=True)


if __name__ == "__main__":
    main()
