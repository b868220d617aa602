package flaskqueue

import (
	"fmt"
	"math/big"
)

// fields is a decoded message dict with typed accessors that produce
// ErrMalformed errors naming the method and key.
type fields struct {
	m      map[string]any
	method string
	lim    Limits
}

func (f fields) errorf(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %q %s", ErrMalformed, f.method, key, fmt.Sprintf(format, args...))
}

// str returns the string at key; absent or None gives "" unless required.
func (f fields) str(key string, required bool) (string, error) {
	v, ok := f.m[key]
	if !ok || v == nil {
		if required {
			return "", f.errorf(key, "is missing")
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", f.errorf(key, "is %s, want str", typeName(v))
	}
	if required && s == "" {
		return "", f.errorf(key, "is empty")
	}
	return s, nil
}

// strList accepts None (nil, false), a str ([s], false) or a list of str.
func (f fields) strList(key string) ([]string, bool, error) {
	switch v := f.m[key].(type) {
	case nil:
		return nil, false, nil
	case string:
		return []string{v}, true, nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false, f.errorf(key, "item %d is %s, want str", i, typeName(e))
			}
			out[i] = s
		}
		return out, true, nil
	default:
		return nil, false, f.errorf(key, "is %s, want str, list or None", typeName(v))
	}
}

func (f fields) int(key string) (int64, error) {
	v, ok := f.m[key]
	if !ok {
		return 0, f.errorf(key, "is missing")
	}
	return f.asInt(key, v)
}

func (f fields) asInt(key string, v any) (int64, error) {
	i, ok := v.(int64)
	if !ok {
		return 0, f.errorf(key, "is %s, want int64", typeName(v))
	}
	return i, nil
}

// fromFields validates a decoded message dict. dataIsTuple reports, for
// pickles, that "data" was a tuple.
func fromFields(m map[string]any, format Format, dataIsTuple bool, lim Limits) (Message, error) {
	f := fields{m: m, method: "message", lim: lim}
	method, err := f.str("method", true)
	if err != nil {
		return Message{}, err
	}
	switch method {
	case MethodEmit, MethodDisconnect, MethodEnterRoom, MethodLeaveRoom, MethodCloseRoom, MethodCallback:
	default:
		return Message{}, fmt.Errorf("%w: %q", ErrUnsupportedMethod, truncate(method))
	}
	f.method = method
	msg := Message{Method: method, Format: format}
	if msg.HostID, err = f.str("host_id", false); err != nil {
		return Message{}, err
	}
	if msg.Namespace, err = f.str("namespace", false); err != nil {
		return Message{}, err
	}
	if msg.Namespace == "" {
		msg.Namespace = "/"
	}
	switch method {
	case MethodEmit:
		err = f.emit(&msg, format, dataIsTuple)
	case MethodDisconnect:
		msg.SID, err = f.str("sid", true)
	case MethodEnterRoom, MethodLeaveRoom:
		if msg.SID, err = f.str("sid", true); err == nil {
			err = f.room(&msg)
		}
	case MethodCloseRoom:
		err = f.room(&msg)
	case MethodCallback:
		err = f.callback(&msg)
	}
	if err != nil {
		return Message{}, err
	}
	return msg, nil
}

func (f fields) room(msg *Message) error {
	room, err := f.str("room", true)
	if err != nil {
		return err
	}
	msg.Rooms = []string{room}
	return nil
}

func (f fields) emit(msg *Message, format Format, dataIsTuple bool) error {
	var err error
	if msg.Event, err = f.str("event", true); err != nil {
		return err
	}
	data, ok := f.m["data"]
	if !ok {
		return f.errorf("data", "is missing")
	}
	if format == FormatJSON {
		msg.Data, err = f.jsonArgs(data)
	} else {
		msg.Data = pickleArgs(data, dataIsTuple)
	}
	if err != nil {
		return err
	}
	rooms, set, err := f.strList("room")
	if err != nil {
		return err
	}
	if set && len(rooms) == 0 {
		return f.errorf("room", "is an empty list")
	}
	msg.Rooms, msg.AllRooms = rooms, !set
	if msg.SkipSIDs, _, err = f.strList("skip_sid"); err != nil {
		return err
	}
	msg.Ack, err = f.ack()
	return err
}

// pickleArgs applies python-socketio's Manager.emit rule: a tuple is the
// argument list, None no argument, anything else the only argument.
func pickleArgs(data any, isTuple bool) []any {
	switch {
	case isTuple:
		return data.([]any)
	case data == nil:
		return []any{}
	default:
		return []any{data}
	}
}

// jsonArgs applies python-socketio 5.14+'s receiving rule: put binary
// attachments back, then a list is the argument list except that a
// one-element list holds the single argument (None meaning none).
func (f fields) jsonArgs(data any) ([]any, error) {
	binary, ok := f.m["binary"]
	if ok && binary != nil {
		b, isBool := binary.(bool)
		if !isBool {
			return nil, f.errorf("binary", "is %s, want bool", typeName(binary))
		}
		if b {
			var err error
			if data, err = f.reconstruct(data); err != nil {
				return nil, err
			}
		}
	}
	list, isList := data.([]any)
	switch {
	case isList && len(list) == 1:
		data = list[0]
	case isList:
		return list, nil
	}
	if data == nil {
		return []any{}, nil
	}
	return []any{data}, nil
}

// ack decodes the emit's "callback": None, or (sid, namespace, id). Like
// python-socketio, a sequence of another length is ignored.
func (f fields) ack() (*Ack, error) {
	v := f.m["callback"]
	if v == nil {
		return nil, nil
	}
	triple, ok := v.([]any)
	if !ok {
		return nil, f.errorf("callback", "is %s, want list or None", typeName(v))
	}
	if len(triple) != 3 {
		return nil, nil
	}
	sid, ok1 := triple[0].(string)
	ns, ok2 := triple[1].(string)
	id, ok3 := triple[2].(int64)
	if !ok1 || !ok2 || !ok3 || sid == "" {
		return nil, f.errorf("callback", "is (%s, %s, %s), want (sid str, namespace str, id int)",
			typeName(triple[0]), typeName(triple[1]), typeName(triple[2]))
	}
	if ns == "" {
		ns = "/"
	}
	return &Ack{SID: sid, Namespace: ns, ID: id}, nil
}

func (f fields) callback(msg *Message) error {
	var err error
	if msg.SID, err = f.str("sid", true); err != nil {
		return err
	}
	if msg.AckID, err = f.int("id"); err != nil {
		return err
	}
	args, ok := f.m["args"]
	if !ok {
		return f.errorf("args", "is missing")
	}
	list, ok := args.([]any)
	if !ok {
		return f.errorf("args", "is %s, want list or tuple", typeName(args))
	}
	msg.Data = list
	return nil
}

// typeName names the Python type of a value, decoded or still a VM value,
// for error messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case []any, *pyList:
		return "list"
	case *pyTuple:
		return "tuple"
	case *pySet:
		return "set"
	case map[string]any, *pyDict:
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}
