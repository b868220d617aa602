"""A real Flask backend deciding for the gateway's auth backend mode.

It logs users in with Flask's own signed session cookie (POST /login?user=),
and answers the gateway's signed calls on POST /auth: on connect it reads
the session from the forwarded Cookie header and names the user; on a join
it allows what its ACL lists. The user "slowjoin" makes every join answer
take longer than the gateway's timeout, "slowconnect" its connect answer.
Usage:

    AUTH_SECRET=... python3 flask_auth.py PORT
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

from flask import Flask, abort, jsonify, request, session

app = Flask(__name__)
app.secret_key = b"the-backend-own-session-secret"
SECRET = os.environ["AUTH_SECRET"].encode()

ACL = {
    "alice": {"project": {"42"}, "batch": {"b42"}, "job": {"j42"}},
    "slowjoin": {"project": {"42"}},
}
calls = {"connect": 0, "join": 0}


@app.post("/login")
def login():
    session["user"] = request.args["user"]
    return jsonify(user=session["user"])


@app.get("/calls")
def count():
    return jsonify(calls)


def verify():
    """Checks the gateway's Standard Webhooks signature."""
    msg_id = request.headers.get("webhook-id", "")
    ts = request.headers.get("webhook-timestamp", "")
    body = request.get_data()
    signed = f"{msg_id}.{ts}.".encode() + body
    want = "v1," + base64.b64encode(hmac.new(SECRET, signed, hashlib.sha256).digest()).decode()
    if not any(hmac.compare_digest(want, s) for s in request.headers.get("webhook-signature", "").split()):
        abort(401)
    if abs(time.time() - int(ts)) > 300:
        abort(401)
    return json.loads(body)


@app.post("/auth")
def auth():
    req = verify()
    calls[req["type"]] += 1
    if req["type"] == "connect":
        with app.test_request_context(headers={"Cookie": req.get("cookie") or ""}):
            user = session.get("user")
        if not user:
            abort(401)
        if user == "slowconnect":
            time.sleep(3)
        return jsonify(user=user)
    user = req["user"]
    if user == "slowjoin":
        time.sleep(3)
    allowed = str(req["id"]) in ACL.get(user, {}).get(req["kind"], set())
    return jsonify(allow=allowed)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
