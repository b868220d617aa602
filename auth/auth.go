package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meshgen/gateway/rooms"
)

// Modes of config auth.
const (
	ModeNone    = "none"
	ModeJWT     = "jwt"
	ModeBackend = "backend"
)

// Sentinel errors. Authenticate's errors wrap ErrUnauthorized, Authorize's
// ErrForbidden; any other error (a backend or registry failure) also
// refuses, and is counted as an error.
var (
	ErrUnauthorized = errors.New("auth: unauthorized")
	ErrForbidden    = errors.New("auth: forbidden")
)

// Reason is why a connect or a join was refused, a short fixed set for the
// metrics' labels.
type Reason string

// Refusal reasons.
const (
	ReasonMissing  Reason = "missing"   // no credentials
	ReasonInvalid  Reason = "invalid"   // malformed, bad signature, wrong issuer or audience
	ReasonExpired  Reason = "expired"   // exp passed (or nbf not reached)
	ReasonDenied   Reason = "denied"    // a valid user who may not (backend said no, or not in the claims)
	ReasonUnknown  Reason = "unknown"   // a batch or job the registry does not tie to an allowed project
	ReasonError    Reason = "error"     // the backend or the registry failed: refused, fail closed
	ReasonTooLarge Reason = "too_large" // credentials over MaxTokenBytes
)

// Refusal is an authentication or authorization refusal with its reason.
type Refusal struct {
	Reason Reason
	Err    error // ErrUnauthorized or ErrForbidden, or the failure behind ReasonError
	Detail string
}

func (r *Refusal) Error() string {
	if r.Detail == "" {
		return fmt.Sprintf("%v (%s)", r.Err, r.Reason)
	}
	return fmt.Sprintf("%v (%s): %s", r.Err, r.Reason, r.Detail)
}

// Unwrap returns the sentinel (or the failure).
func (r *Refusal) Unwrap() error { return r.Err }

// ReasonOf returns the reason of a refusal: ReasonError for an error that
// is not a *Refusal.
func ReasonOf(err error) Reason {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ReasonError
}

func unauthorized(reason Reason, detail string) error {
	return &Refusal{Reason: reason, Err: ErrUnauthorized, Detail: detail}
}

func forbidden(reason Reason, detail string) error {
	return &Refusal{Reason: reason, Err: ErrForbidden, Detail: detail}
}

// Principal is an authenticated client.
type Principal struct {
	// User is the user id (the token's sub, the backend's user); empty for
	// an anonymous client of the none mode.
	User string
	// Projects and Batches are what the credentials themselves grant.
	Projects Grant
	Batches  Grant
	// ExpiresAt is when the credentials expire (zero: never); the socket is
	// disconnected then.
	ExpiresAt time.Time
}

// Grant is a set of ids, or all of them.
type Grant struct {
	All bool
	IDs map[string]struct{}
}

// Allows reports whether the grant covers the id key.
func (g Grant) Allows(key string) bool {
	if g.All {
		return true
	}
	_, ok := g.IDs[key]
	return ok
}

// Empty reports whether the grant covers nothing.
func (g Grant) Empty() bool { return !g.All && len(g.IDs) == 0 }

// Policy authenticates connects and authorizes joins.
type Policy interface {
	// Authenticate checks creds and returns who the client is; an error
	// refuses the connect.
	Authenticate(ctx context.Context, creds Credentials) (*Principal, error)
	// Authorize decides one join of p; nil allows it. An error refuses it:
	// ErrForbidden for a decision, anything else for a failure (fail
	// closed).
	Authorize(ctx context.Context, p *Principal, a rooms.Access) error
}

// Owners ties batches and jobs to their projects (the job registry), for a
// policy whose credentials list projects.
type Owners interface {
	// JobProject returns the project a registered job belongs to.
	JobProject(ctx context.Context, job string) (project rooms.ID, found bool, err error)
	// BatchProjects returns the projects of the jobs registered with a
	// batch (none when the batch is unknown).
	BatchProjects(ctx context.Context, batch string) ([]rooms.ID, error)
}

// Open is the none mode: everyone is anonymous and may join everything.
type Open struct{}

var _ Policy = Open{}

// Authenticate implements Policy.
func (Open) Authenticate(context.Context, Credentials) (*Principal, error) {
	return &Principal{Projects: Grant{All: true}, Batches: Grant{All: true}}, nil
}

// Authorize implements Policy.
func (Open) Authorize(context.Context, *Principal, rooms.Access) error { return nil }

// authorizeByGrants decides a join from what the credentials grant and what
// the registry ties batches and jobs to.
func authorizeByGrants(ctx context.Context, owners Owners, p *Principal, r rooms.Access) error {
	switch r.Kind {
	case rooms.AccessProject:
		if p.Projects.Allows(r.ID.Key) {
			return nil
		}
		return forbidden(ReasonDenied, "project "+r.ID.Key)
	case rooms.AccessBatch:
		if p.Batches.Allows(r.ID.Key) || p.Projects.All {
			return nil
		}
		if owners == nil {
			return forbidden(ReasonUnknown, "batch "+r.ID.Key)
		}
		projects, err := owners.BatchProjects(ctx, r.ID.Key)
		if err != nil {
			return &Refusal{Reason: ReasonError, Err: fmt.Errorf("batch %s: %w", r.ID.Key, err)}
		}
		if len(projects) == 0 {
			return forbidden(ReasonUnknown, "batch "+r.ID.Key)
		}
		for _, project := range projects {
			if !p.Projects.Allows(project.Key) {
				return forbidden(ReasonDenied, "batch "+r.ID.Key+" of project "+project.Key)
			}
		}
		return nil
	case rooms.AccessJob:
		if p.Projects.All {
			return nil
		}
		if owners != nil {
			project, found, err := owners.JobProject(ctx, r.ID.Key)
			if err != nil {
				return &Refusal{Reason: ReasonError, Err: fmt.Errorf("job %s: %w", r.ID.Key, err)}
			}
			if found {
				if p.Projects.Allows(project.Key) {
					return nil
				}
				return forbidden(ReasonDenied, "job "+r.ID.Key+" of project "+project.Key)
			}
		}
		if r.Project.Key != "" && p.Projects.Allows(r.Project.Key) {
			return nil
		}
		return forbidden(ReasonUnknown, "job "+r.ID.Key)
	}
	return forbidden(ReasonDenied, "unknown kind "+r.Kind)
}
