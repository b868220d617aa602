package flaskqueue

import "testing"

// BenchmarkDecode decodes typical messages: an emit of one small dict to
// a room (the common Flask-SocketIO log/progress line), the nested fixture
// and a ~75 KiB one, in the pickle protocols python-socketio publishes and
// in JSON.
func BenchmarkDecode(b *testing.B) {
	for _, file := range []string{
		"emit_room.p4.pickle", // Python 3.8+ default protocol
		"emit_room.p2.pickle",
		"emit_room.p0.pickle",
		"emit_room.json", // python-socketio >= 5.14
		"emit_tuple_args.p4.pickle",
		"emit_nested.p4.pickle",
		"emit_nested.json",
		"emit_large.p4.pickle",
		"emit_large.json",
	} {
		in := fixture(b, file)
		b.Run(file, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := Decode(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodePickle measures the pickle VM alone on a typical emit.
func BenchmarkDecodePickle(b *testing.B) {
	in := fixture(b, "emit_room.p4.pickle")
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := DecodePickle(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAndPayload is the whole path for one emit: decode, then
// encode the arguments once.
func BenchmarkDecodeAndPayload(b *testing.B) {
	for _, file := range []string{"emit_room.p4.pickle", "emit_room.json"} {
		in := fixture(b, file)
		b.Run(file, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, err := Decode(in)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := m.PayloadJSON(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRefuseUnsafe measures refusing a real os.system pickle.
func BenchmarkRefuseUnsafe(b *testing.B) {
	in := fixture(b, "hostile_os_system.p4.pickle")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(in); err == nil {
			b.Fatal("accepted")
		}
	}
}
