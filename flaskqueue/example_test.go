package flaskqueue_test

import (
	"errors"
	"fmt"

	"github.com/meshgen/gateway/flaskqueue"
)

func ExampleDecode() {
	// What python-socketio >= 5.14 publishes for
	// socketio.emit("log_line", {"job_id": "j1"}, to="project_42").
	raw := []byte(`{"method": "emit", "event": "log_line", "data": [{"job_id": "j1"}],
		"binary": false, "namespace": "/", "room": "project_42", "skip_sid": null,
		"callback": null, "host_id": "8f4e2c1a"}`)
	m, err := flaskqueue.Decode(raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	args, err := m.PayloadJSON()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Method, m.Format, m.Event, m.Namespace, m.Rooms, m.AllRooms)
	fmt.Println(string(args[0]))

	// A pickle that would run os.system("id") is refused, never evaluated.
	evil := []byte("\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system" +
		"\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.")
	_, err = flaskqueue.Decode(evil)
	fmt.Println(errors.Is(err, flaskqueue.ErrUnsafePickle), err)
	// Output:
	// emit json log_line / [project_42] false
	// {"job_id":"j1"}
	// true flaskqueue: unsafe pickle: opcode STACK_GLOBAL at offset 28
}
