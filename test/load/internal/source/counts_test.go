package source

import (
	"strings"
	"testing"
)

func TestParseGatewayCounts(t *testing.T) {
	text := `# HELP gateway_http_requests_total Producer HTTP requests
# TYPE gateway_http_requests_total counter
gateway_http_requests_total{code="200",route="/api/events"} 50
gateway_http_requests_total{code="401",route="/api/events"} 3
gateway_http_requests_total{code="200",route="/api/webhooks/modal"} 7
gateway_socket_events_emitted_total{event="job_completed"} 5000
gateway_socket_events_emitted_total{event="subscribed_project"} 1000
gateway_socket_deliveries_total 50000
`
	pc, err := ParseGatewayCounts(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if pc.Posts != 50 || pc.Events != 5000 {
		t.Fatalf("counts %+v, want 50 posts of 5000 events", pc)
	}
}
