package flaskqueue

// internString returns the strings every message repeats (its keys and
// method names) as constant interface values, which cost no allocation;
// nil for any other string.
func internString(raw []byte) any {
	if len(raw) == 0 || len(raw) > len("enter_room") {
		return nil
	}
	switch string(raw) { // no allocation: the conversion is only compared
	case "method":
		return "method"
	case "event":
		return "event"
	case "data":
		return "data"
	case "namespace":
		return "namespace"
	case "room":
		return "room"
	case "skip_sid":
		return "skip_sid"
	case "callback":
		return "callback"
	case "host_id":
		return "host_id"
	case "binary":
		return "binary"
	case "sid":
		return "sid"
	case "id":
		return "id"
	case "args":
		return "args"
	case "emit":
		return "emit"
	case "disconnect":
		return "disconnect"
	case "enter_room":
		return "enter_room"
	case "leave_room":
		return "leave_room"
	case "close_room":
		return "close_room"
	case "/":
		return "/"
	}
	return nil
}
