package source

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// PostCounts are the event requests a server counted and the events they
// carried, since it started: the server's side of the generator's batch
// sizes.
type PostCounts struct {
	Posts  float64 `json:"posts"`
	Events float64 `json:"events"`
}

// ErrNotCounted means the server does not count what this source posts.
var ErrNotCounted = errors.New("source: the server does not count these requests")

// ReadPostCounts reads what the server at baseURL counted of the requests
// of source name: the gateway's /metrics for publish
// (gateway_http_requests_total{route="/api/events",code="200"} and
// gateway_socket_events_emitted_total{event="job_completed"}, which also
// counts webhooks: post nothing else during a run), the node peer's GET
// /_bench/emits for emitter. ErrNotCounted for webhook, and from servers
// without the counters (the flask peer).
func ReadPostCounts(ctx context.Context, c *http.Client, baseURL, name string) (PostCounts, error) {
	switch name {
	case "publish":
		return gatewayCounts(ctx, c, baseURL)
	case "emitter":
		body, err := get(ctx, c, baseURL+"/_bench/emits")
		if err != nil {
			return PostCounts{}, err
		}
		defer body.Close()
		var pc PostCounts
		if err := json.NewDecoder(io.LimitReader(body, 4096)).Decode(&pc); err != nil {
			return PostCounts{}, fmt.Errorf("source: /_bench/emits: %w", err)
		}
		return pc, nil
	}
	return PostCounts{}, ErrNotCounted
}

func get(ctx context.Context, c *http.Client, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("source: GET %s: %w", url, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, ErrNotCounted
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("source: GET %s: %w", url, &StatusError{Code: resp.StatusCode})
	}
	return resp.Body, nil
}

func gatewayCounts(ctx context.Context, c *http.Client, baseURL string) (PostCounts, error) {
	body, err := get(ctx, c, baseURL+"/metrics")
	if err != nil {
		return PostCounts{}, err
	}
	defer body.Close()
	pc, err := ParseGatewayCounts(io.LimitReader(body, 16<<20))
	if err != nil {
		return PostCounts{}, fmt.Errorf("source: %s/metrics: %w", baseURL, err)
	}
	return pc, nil
}

// ParseGatewayCounts reads the publish API's accepted requests and the
// job_completed events emitted from a Prometheus text exposition. A
// counter not yet exported (nothing posted since start) counts 0.
func ParseGatewayCounts(r io.Reader) (PostCounts, error) {
	var pc PostCounts
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for lines := 0; sc.Scan() && lines < 1_000_000; lines++ {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		labels, val, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		var dst *float64
		switch {
		case name == "gateway_http_requests_total" && strings.Contains(labels, `route="/api/events"`) && strings.Contains(labels, `code="200"`):
			dst = &pc.Posts
		case name == "gateway_socket_events_emitted_total" && strings.Contains(labels, `event="job_completed"`):
			dst = &pc.Events
		default:
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return pc, fmt.Errorf("%q: %w", line, err)
		}
		*dst += v
	}
	return pc, sc.Err()
}
