"""Reference peer for the load harness: Flask-SocketIO (Debian's 5.3.2 on
eventlet), the system the gateway replaces, implementing the same client
protocol (subscribe_project / join_batch) and the Modal webhook
(POST /api/webhooks/modal -> job_completed / job_failed to project_<id>).

    HOST=127.0.0.1 PORT=5002 MODAL_WEBHOOK_SECRET=s /usr/bin/python3 server.py

Run it with Debian's interpreter (/usr/bin/python3): the packages are
python3-flask-socketio and python3-eventlet.

BENCH_EMITTER=1 also serves POST /_bench/emit {"events":[{event, room,
data}]}: a batch emitted straight from the process (the harness's
"emitter" source).
"""

import eventlet

eventlet.monkey_patch()

import hashlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import eventlet.wsgi  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from flask_socketio import SocketIO, emit, join_room  # noqa: E402

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "5002"))
SECRET = os.environ.get("MODAL_WEBHOOK_SECRET", "")
EMITTER = os.environ.get("BENCH_EMITTER") == "1"
# eventlet.wsgi serves at most max_size connections at once (default 1024):
# raise it so tens of thousands of clients can stay connected.
MAX_CONNECTIONS = int(os.environ.get("MAX_CONNECTIONS", "30000"))

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 1 << 20
socketio = SocketIO(
    app,
    async_mode="eventlet",
    cors_allowed_origins=os.environ.get(
        "CORS_ORIGINS", "http://localhost:5173,http://localhost:3000"
    ).split(","),
    ping_interval=25,
    ping_timeout=20,
    max_http_buffer_size=1_000_000,
    logger=False,
    engineio_logger=False,
)
logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _id(v):
    if isinstance(v, str) and v:
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return None


@app.route("/api/webhooks/modal", methods=["POST"])
def modal_webhook():
    raw = request.get_data()
    if SECRET:
        header = request.headers.get("X-Modal-Signature", "")
        want = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(header, want):
            return jsonify({"error": "Invalid signature"}), 401
    try:
        body = json.loads(raw)
    except ValueError:
        return jsonify({"error": "Invalid JSON"}), 400
    if not isinstance(body, dict):
        return jsonify({"error": "Invalid JSON"}), 400
    job_id = body.get("job_id")
    if not job_id:
        return jsonify({"error": "Missing job_id"}), 400
    project_id = _id(body.get("project_id"))
    if project_id is None:
        return jsonify({"error": "Job not found"}), 404
    room = "project_" + project_id
    if body.get("status") == "completed" and "result" in body:
        socketio.emit(
            "job_completed",
            {"project_id": body["project_id"], "job_id": job_id, "status": "completed", "result": body["result"]},
            to=room,
        )
    else:
        socketio.emit(
            "job_failed",
            {"project_id": body["project_id"], "job_id": job_id, "error": body.get("error") or "Unknown error"},
            to=room,
        )
    return jsonify({"status": "ok", "job_id": job_id}), 200


@app.route("/_bench/emit", methods=["POST"])
def bench_emit():
    if not EMITTER:
        return jsonify({"error": "Not found"}), 404
    body = request.get_json(force=True, silent=True) or {}
    events = body.get("events") or []
    for e in events:
        socketio.emit(e["event"], e["data"], to=e["room"])
    return jsonify({"status": "ok", "emitted": len(events)}), 200


@app.route("/livez")
def livez():
    return jsonify({"status": "ok"})


@socketio.on("subscribe_project")
def subscribe_project(data):
    pid = _id((data or {}).get("project_id")) if isinstance(data, dict) else None
    if pid is None:
        emit("error", {"message": "Missing project_id"})
        return {"message": "Missing project_id"}
    join_room("project_" + pid)
    emit("subscribed_project", {"project_id": data["project_id"]})
    return {"project_id": data["project_id"]}


@socketio.on("join_batch")
def join_batch(data):
    bid = _id((data or {}).get("batch_id")) if isinstance(data, dict) else None
    if bid is None:
        emit("error", {"message": "Missing batch_id"})
        return {"message": "Missing batch_id"}
    join_room("batch_" + bid)
    emit("joined_batch", {"batch_id": data["batch_id"]})
    return {"batch_id": data["batch_id"]}


if __name__ == "__main__":
    # What socketio.run(app) does for eventlet, with a larger accept
    # backlog and connection cap, and no per-request access log.
    sock = eventlet.listen((HOST, PORT), backlog=4096)
    sys.stderr.write("flask-socketio peer listening on %s:%d\n" % (HOST, PORT))
    sys.stderr.flush()
    eventlet.wsgi.server(sock, app, log_output=False, max_size=MAX_CONNECTIONS)
