// Package flaskqueue decodes the messages Python's Flask-SocketIO (through
// python-socketio's pub/sub client managers, e.g. RedisManager) publishes
// on its message-queue channel, "flask-socketio" by default, so that the
// gateway can act on emits issued by any Python process.
//
// It owns only the decoding and validation of one message: subscribing to
// Redis, routing to rooms and encoding Socket.IO packets are elsewhere.
//
// # Formats
//
// Each message is a dict such as
//
//	{"method": "emit", "event": "log_line", "data": {...},
//	 "namespace": "/", "room": "project_42", "skip_sid": None,
//	 "callback": None, "host_id": "<hex>"}
//
// python-socketio 5.14 and later publish it as JSON (with "data" always
// the argument list, plus a "binary" flag); 5.13 and earlier (Debian 12
// ships 5.7.2) publish pickle.dumps(dict), protocol 4 on Python 3.8+, other
// protocols from other interpreters. Decode detects the format, decodes it
// and returns a validated Message; Message.PayloadJSON encodes the emit
// arguments once for every recipient. The methods are emit, disconnect,
// enter_room, leave_room, close_room and callback (see the Method*
// constants for what each carries).
//
// # Safety
//
// Unpickling in Python can import modules and call any function. The
// pickle decoder here (DecodePickle) is a separate, data-only
// implementation of the pickle VM: it never imports, constructs objects or
// calls code. The opcodes that would (GLOBAL, STACK_GLOBAL, REDUCE, BUILD,
// INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT1/2/4, PERSID, BINPERSID, NEXT_BUFFER,
// READONLY_BUFFER) and unknown opcodes make it refuse the whole message
// with ErrUnsafePickle; nothing from such a message is returned. A refused
// message on a channel only Flask-SocketIO should write to means someone
// else can publish there: treat it as a security event.
//
// Every decode is bounded (see Limits): nesting depth, container elements
// and bytes of text and binary values (both counted with references shared
// through the pickle memo expanded, which could otherwise blow up
// exponentially when the result is encoded), memo entries and integer
// size. Lengths
// in the input are checked against the input before anything is
// allocated, memory stays linear in the input size, and no input makes the
// decoder panic (it is fuzzed). Capping the size of what is read from the
// queue is the caller's job.
//
// # Why not og-rek
//
// github.com/kisielk/og-rek v1.3.0 was measured as a replacement for the
// VM: its decoder, which returns GLOBAL, REDUCE and PERSID as inert
// values, plus a bounded walker converting its result to the values
// above and refusing anything else (a prototype, not kept). It fails
// on three counts.
//
// Limits come too late. og-rek parses an INT or LONG line into a
// *big.Int before it returns, in time and memory quadratic in the
// digits: "I" + 1,000,000 "9" + "\n." (1,000,003 bytes) allocates
// 2,204,861,216 bytes in 2.1-3.3 s (100,000 digits: 24 MB, 30 ms), and
// only then could the walker apply the 4300-digit limit; this decoder
// refuses it after allocating about 2 KB, in under 1 ms
// (TestDecodePickleRefusesHugeIntegerBeforeParsing). Its memo and stack
// are private, so MaxMemo and the element count cannot be enforced
// while it builds: "\x80\x05](" + 100,000 times ("\x96" + 8-byte
// little-endian 1 + "x") + "e." (1,000,006 bytes of 1-byte bytearrays)
// allocates 183 MB and holds 107 MB when it returns (this decoder:
// 13.7 MB and 4.8 MB). Claimed lengths alone are handled: a 20-byte
// input claiming gigabytes of BINBYTES, BINSTRING or BYTEARRAY8 costs
// it 70 KB (it caps preallocation at 64 KiB).
//
// It decodes real messages wrongly, silently. It stores lists by slice
// value, so a list shared through the memo or DUP loses its later
// APPENDs: "\x80\x04]\x94Na0h\x00h\x00\x86." gives [[], []], not
// [[None], [None]], and every protocol of the emit_nested sample gives
// "shared": [["shared", 1], []]. It ignores POP_MARK
// ("\x80\x04N(\x88\x891." gives False, not None) and values left on
// the stack at STOP. It lacks LONG4, BINUNICODE8, BINBYTES8, EMPTY_SET,
// ADDITEMS and FROZENSET, so Python 3.8+'s pickle of a set (emit_set)
// fails. It turns _codecs.encode(s, "latin1") and bytearray(...) calls
// into bytes, leaving the walker nothing to refuse, so the
// refused_emit_bytes (protocols 0-2) and refused_emit_bytearray (0-4)
// samples are accepted. With the prototype, 103 of this package's 855
// tests and subtests fail, the rest on error texts and offsets it
// cannot give. (It did not panic in 200,000 executions of each fuzz
// target.)
//
// It is slower: decoding the emit_room protocol 4 sample takes 27 µs,
// 11.3 KiB and 91 allocations instead of 7.2 µs, 2.6 KiB and 25; the
// 75 KiB emit_large sample 1.26 ms instead of 318 µs (BenchmarkDecode,
// six interleaved runs each).
package flaskqueue
