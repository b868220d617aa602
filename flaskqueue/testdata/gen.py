#!/usr/bin/env python3
"""Generate the flaskqueue test fixtures.

Run from anywhere with the Debian interpreter (Debian 12 ships the
python3-socketio 5.7.2 / Flask-SocketIO 5.3.2 that publish pickles):

    /usr/bin/python3 flaskqueue/testdata/gen.py

It writes, next to itself:

* <case>.p<N>.pickle  -- pickle.dumps(message, protocol=N) of the exact dict
  python-socketio <= 5.13 publishes (RedisManager._publish does
  pickle.dumps(data) with the interpreter's default protocol, 4 on 3.8+,
  3 on 3.0-3.7, 2 on Python 2; 0 and 1 are generated too).
* <case>.json         -- json.dumps(message) as python-socketio >= 5.14
  publishes it (emit data always a list of arguments, bytes replaced by
  placeholders and base64 attachments, "binary" flag).
* hostile_<name>.p<N>.pickle -- pickles that construct objects or call code;
  the Go decoder must refuse every one of them.

The fixtures are committed so the Go tests do not need Python at run time.
Nothing here unpickles anything.
"""

import base64
import copy
import json
import os
import pickle
import subprocess
import sys

OUT = os.path.dirname(os.path.abspath(__file__))
HOST = "8f4e2c1a9b7d4e6f8a0b1c2d3e4f5a6b"
ALL_PROTOCOLS = range(0, pickle.HIGHEST_PROTOCOL + 1)


def emit(event, data, namespace="/", room=None, skip_sid=None, callback=None,
         host_id=HOST):
    """The dict PubSubManager.emit publishes in python-socketio 5.7.2."""
    return {"method": "emit", "event": event, "data": data,
            "namespace": namespace, "room": room, "skip_sid": skip_sid,
            "callback": callback, "host_id": host_id}


SHARED = ["shared", 1]
NESTED = {
    "ints": [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**31,
             2**40, -2**40, 2**63 - 1, -2**63],
    "big": [2**63, -2**63 - 1, 2**100],
    "floats": [1.5, -0.0, 0.1, 1e300, -2.5e-10],
    "bools": [True, False],
    "none": None,
    "empty": {"list": [], "dict": {}, "tuple": (), "str": ""},
    "deep": {"a": {"b": {"c": {"d": ["e", ("f", "g")]}}}},
    "repeat": ["same", "same", "same"],
    "shared": [SHARED, SHARED],
    "long_text": "x" * 300,
}

# name -> (message, protocols); None means every protocol.
CASES = {
    "emit_room": (emit("log_line", {"job_id": "j1", "message": "step 1/3 done"},
                       room="project_42"), None),
    "emit_rooms_list": (emit("job_status", {"job_id": "j2", "state": "running"},
                             room=["project_42", "user_7"]), None),
    "emit_rooms_tuple": (emit("job_status", {"job_id": "j3"},
                              room=("project_42", "user_7")), None),
    "emit_broadcast": (emit("announcement", "maintenance at 22:00",
                            namespace="/jobs"), None),
    "emit_tuple_args": (emit("progress", ("j1", 42, {"eta": 12.5}),
                             room="project_42"), None),
    "emit_list_arg": (emit("numbers", [1, 2, 3], room="r"), None),
    "emit_no_data": (emit("ping", None, room="r"), None),
    "emit_unicode": (emit("chat", {"msg": "héllo wörld ✓ 日本語 🚀",
                                   "ключ 🔑": "znak\\n\n\r\x00\x1a"},
                          room="salle-é"), None),
    "emit_nested": (emit("snapshot", NESTED, room="project_42"), None),
    "emit_skip_sid": (emit("typing", {"user": "u1"}, room="project_42",
                           skip_sid="sid_abc"), None),
    "emit_skip_sids": (emit("typing", {"user": "u1"}, room="project_42",
                            skip_sid=["sid_abc", "sid_def"]), None),
    "emit_callback": (emit("confirm", {"q": "ok?"}, room="sid_abc",
                           callback=("sid_abc", "/", 7)), None),
    "emit_no_host_id": ({"method": "emit", "event": "legacy", "data": "x",
                         "namespace": "/", "room": "r", "skip_sid": None,
                         "callback": None}, None),
    "emit_bytes": (emit("blob", {"png": b"\x89PNG\r\n\x00\xff"}, room="r"),
                   [3, 4, 5]),
    "emit_set": (emit("tags", {"ids": {3, 1, 2}, "frozen": frozenset([9])},
                      room="r"), [4, 5]),
    "emit_bytearray": (emit("blob", bytearray(b"abc"), room="r"), [5]),
    # > 1000 items (APPENDS batches) and > 64 KiB (several FRAMEs, a
    # string written outside any frame).
    "emit_large": (emit("bulk", {"rows": list(range(2500)),
                                 "text": "x" * 70000},
                        room="project_42"), [2, 4]),
    "disconnect": ({"method": "disconnect", "sid": "sid_abc",
                    "namespace": "/", "host_id": HOST}, None),
    "disconnect_legacy": ({"method": "disconnect", "sid": "sid_abc",
                           "namespace": "/chat"}, None),
    "enter_room": ({"method": "enter_room", "sid": "sid_abc",
                    "room": "project_42", "namespace": "/",
                    "host_id": HOST}, None),
    "leave_room": ({"method": "leave_room", "sid": "sid_abc",
                    "room": "project_42", "namespace": "/",
                    "host_id": HOST}, None),
    "close_room": ({"method": "close_room", "room": "project_42",
                    "namespace": "/", "host_id": HOST}, None),
    "callback": ({"method": "callback", "host_id": HOST, "sid": "sid_abc",
                  "namespace": "/", "id": 7, "args": ("yes", 1)}, None),
}


# Cases whose values pickle through GLOBAL+REDUCE below their protocols.
NEED_REDUCE = {"emit_bytes", "emit_set", "emit_bytearray"}


# --- python-socketio >= 5.14 JSON encoding (mirrors pubsub_manager.emit) ---

def deconstruct(data, attachments):
    if isinstance(data, bytes):
        attachments.append(data)
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(data, list):
        return [deconstruct(x, attachments) for x in data]
    if isinstance(data, dict):
        return {k: deconstruct(v, attachments) for k, v in data.items()}
    return data


def is_binary(data):
    if isinstance(data, bytes):
        return True
    if isinstance(data, list):
        return any(is_binary(x) for x in data)
    if isinstance(data, dict):
        return any(is_binary(x) for x in data.values())
    return False


def to_json_message(msg):
    msg = copy.deepcopy(msg)
    if msg["method"] != "emit":
        return msg
    data = msg["data"]
    data = list(data) if isinstance(data, tuple) else [data]
    binary = is_binary(data)
    if binary:
        attachments = []
        data = deconstruct(data, attachments)
        data = [data, *[base64.b64encode(a).decode() for a in attachments]]
    out = {}
    for k, v in msg.items():
        out[k] = v
        if k == "data":
            out["data"] = data
            out["binary"] = binary
    return out


def json_ok(msg):
    try:
        json.dumps(msg)
        return True
    except TypeError:
        return False


# --- hostile pickles -------------------------------------------------------

class RunShell:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/flaskqueue-pwned",))


class RunSubprocess:
    def __reduce__(self):
        return (subprocess.check_output, (["id"],))


class Plain:
    def __init__(self):
        self.secret = "x"


class PersistentPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Plain):
            return "plain-1"
        return None


def persistent_dumps(obj, protocol):
    import io
    buf = io.BytesIO()
    PersistentPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


HOSTILE = {
    "hostile_os_system": lambda p: pickle.dumps(
        emit("x", {"boom": RunShell()}, room="r"), protocol=p),
    "hostile_subprocess": lambda p: pickle.dumps(
        emit("x", RunSubprocess(), room="r"), protocol=p),
    "hostile_object": lambda p: pickle.dumps(
        emit("x", {"obj": Plain()}, room="r"), protocol=p),
    "hostile_eval": lambda p: pickle.dumps(
        emit("x", [eval], room="r"), protocol=p),
    "hostile_persistent_id": lambda p: persistent_dumps(
        emit("x", {"obj": Plain()}, room="r"), p),
}


def hostile_out_of_band():
    # Protocol 5 out-of-band buffers: NEXT_BUFFER (+ READONLY_BUFFER).
    msg = emit("x", pickle.PickleBuffer(b"out-of-band"), room="r")
    return pickle.dumps(msg, protocol=5, buffer_callback=lambda b: False)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    for fn in os.listdir(OUT):
        if fn.endswith(".pickle") or fn.endswith(".json"):
            os.remove(os.path.join(OUT, fn))
    count = 0
    for name, (msg, protocols) in CASES.items():
        for p in (protocols or ALL_PROTOCOLS):
            write("%s.p%d.pickle" % (name, p), pickle.dumps(msg, protocol=p))
            count += 1
        jm = to_json_message(msg)
        if json_ok(jm):
            write(name + ".json", json.dumps(jm).encode())
            count += 1
    # bytes/sets/bytearray under the protocols that need GLOBAL+REDUCE
    # for them: the decoder refuses these (documented limitation).
    for name, (msg, protocols) in CASES.items():
        if protocols is None or name not in NEED_REDUCE:
            continue
        for p in ALL_PROTOCOLS:
            if p not in protocols:
                write("refused_%s.p%d.pickle" % (name, p),
                      pickle.dumps(msg, protocol=p))
                count += 1
    for name, fn in HOSTILE.items():
        for p in ALL_PROTOCOLS:
            write("%s.p%d.pickle" % (name, p), fn(p))
            count += 1
    write("hostile_out_of_band.p5.pickle", hostile_out_of_band())
    count += 1
    print("python %s: wrote %d fixtures to %s" % (
        sys.version.split()[0], count, OUT))


if __name__ == "__main__":
    main()
