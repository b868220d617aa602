package status

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Path is the status page; its other routes are below it.
const Path = "/status"

// Routes below Path.
const (
	EventsPath = Path + "/events" // the live stream (Server-Sent Events)
	StatePath  = Path + "/state"  // the state as JSON
	LoginPath  = Path + "/login"  // the login form
	AssetsPath = Path + "/assets/"
)

// writeTimeout bounds one write to a live stream: a reader that does not
// take its data within it is dropped.
const writeTimeout = 10 * time.Second

//go:embed assets
var assetsFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"total": func(m map[string]int) int {
		n := 0
		for _, v := range m {
			n += v
		}
		return n
	},
	"age": func(s float64) string { return (time.Duration(s) * time.Second).String() },
}).ParseFS(assetsFS, "assets/*.html"))

// Register serves the page's routes on e.
func (s *Server) Register(e *echo.Echo) {
	assets, _ := fs.Sub(assetsFS, "assets")
	e.GET(AssetsPath+"*", echo.WrapHandler(http.StripPrefix(AssetsPath, http.FileServerFS(assets))))
	e.GET(Path, s.page)
	e.GET(EventsPath, s.events)
	e.GET(StatePath, s.stateJSON)
	e.GET(LoginPath, func(c echo.Context) error { return s.login(c, http.StatusOK, "") })
	e.POST(LoginPath, s.postLogin)
}

// guard answers a request auth refuses; false when it did.
func (s *Server) guard(c echo.Context, html bool) bool {
	switch s.auth.check(c.Request()) {
	case allowed:
		return true
	case limited:
		if html {
			_ = s.login(c, http.StatusTooManyRequests, "Too many wrong tokens; try again in a minute.")
		} else {
			_ = c.JSON(http.StatusTooManyRequests, map[string]string{"error": "Too many wrong tokens, retry later"})
		}
	default:
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="gateway status"`)
		if html {
			_ = s.login(c, http.StatusUnauthorized, "")
		} else {
			_ = c.JSON(http.StatusUnauthorized, map[string]string{"error": "Status token required"})
		}
	}
	return false
}

// page renders the page with the current state.
func (s *Server) page(c echo.Context) error {
	if !s.guard(c, true) {
		return nil
	}
	var st State
	if err := json.Unmarshal(s.current(c.Request().Context()), &st); err != nil {
		return fmt.Errorf("status: decode state: %w", err)
	}
	return s.render(c, http.StatusOK, "status.html", map[string]any{"State": st})
}

// stateJSON answers the current state.
func (s *Server) stateJSON(c echo.Context) error {
	if !s.guard(c, false) {
		return nil
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSONBlob(http.StatusOK, s.current(c.Request().Context()))
}

// login renders the login form with status and an optional message.
func (s *Server) login(c echo.Context, status int, message string) error {
	return s.render(c, status, "login.html", map[string]any{"Message": message, "Open": s.auth.open()})
}

func (s *Server) render(c echo.Context, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		return fmt.Errorf("status: render %s: %w", name, err)
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	return c.HTMLBlob(status, buf.Bytes())
}

// postLogin checks the form's token and sets the session cookie.
func (s *Server) postLogin(c echo.Context) error {
	r := c.Request()
	if s.auth.open() {
		return c.Redirect(http.StatusSeeOther, Path)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, MaxLoginBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) || r.ContentLength > MaxLoginBodyBytes {
		s.limits.LoginBody.Add(1)
		return s.login(c, http.StatusRequestEntityTooLarge, "The form is too large.")
	}
	if err != nil {
		return s.login(c, http.StatusBadRequest, "The form could not be read.")
	}
	token, err := ParseLoginForm(body)
	if err != nil {
		return s.login(c, http.StatusBadRequest, "Enter the status token.")
	}
	switch s.auth.attempt(token) {
	case allowed:
		http.SetCookie(c.Response(), s.auth.cookie(r))
		return c.Redirect(http.StatusSeeOther, Path)
	case limited:
		return s.login(c, http.StatusTooManyRequests, "Too many wrong tokens; try again in a minute.")
	default:
		s.log.Warn("status: wrong token", slog.String("remote", c.RealIP()))
		return s.login(c, http.StatusUnauthorized, "Wrong token.")
	}
}

// events streams the state as Server-Sent Events: the current one at once,
// then each new sample, until the client goes, the node shuts down, or a
// write does not complete within writeTimeout.
func (s *Server) events(c echo.Context) error {
	if !s.guard(c, false) {
		return nil
	}
	ctx := c.Request().Context()
	first := s.current(ctx) // before subscribing: a first sample is pushed to the subscribers
	ch, ok := s.subscribe()
	if !ok {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"error": "Too many status streams on this node"})
	}
	defer s.unsubscribe(ch)
	w := c.Response()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := io.WriteString(w, "event: state\ndata: "); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "\n\n"); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(first); err != nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return nil
		case b := <-ch:
			if err := send(b); err != nil {
				return nil
			}
		}
	}
}
