// Package webhook receives Modal's signed completion webhooks
// (POST /api/webhooks/modal), verifies them, ties the job to its project and
// publishes job_completed or job_failed onto the bus. It knows nothing of
// sockets.
//
// Answers keep the existing Flask server's shapes (docs/protocol.md):
// 200 {"status":"ok","job_id":...}, 400 Invalid JSON / Missing job_id,
// 401 Invalid signature, 404 Job not found, 413 past the body limit,
// 500 on an internal fault. A 200 is sent only after the bus accepted the
// event.
package webhook
