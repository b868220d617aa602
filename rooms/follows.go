package rooms

import (
	"context"
	"sync"
)

// Follow is one client following one job's logs.
type Follow struct {
	Job     ID
	Project ID     // zero Key when not given
	Type    string // TypeLocal or TypeModal
	Member  string // the client's socket id
}

// Follows tracks which clients follow which jobs' logs. A job is active
// while at least one client follows it (anywhere in the cluster, for the
// Redis implementation).
type Follows interface {
	// Follow records f and reports whether the job was already being
	// followed (by anyone, f.Member included).
	Follow(ctx context.Context, f Follow) (already bool, err error)
	// Unfollow removes f.Member's follow of f.Job; false when it had none.
	Unfollow(ctx context.Context, f Follow) (bool, error)
	// Drop removes every follow of member (on disconnect).
	Drop(ctx context.Context, member string)
	// Count is the number of jobs member follows.
	Count(member string) int
}

// MemoryFollows is the single-node Follows. The zero value is not usable;
// create it with NewMemoryFollows.
type MemoryFollows struct {
	mu       sync.Mutex
	byJob    map[string]map[string]struct{}
	byMember map[string]map[string]struct{}
}

var _ Follows = (*MemoryFollows)(nil)

// NewMemoryFollows returns an empty in-process Follows.
func NewMemoryFollows() *MemoryFollows {
	return &MemoryFollows{
		byJob:    make(map[string]map[string]struct{}),
		byMember: make(map[string]map[string]struct{}),
	}
}

// Follow implements Follows.
func (f *MemoryFollows) Follow(_ context.Context, fl Follow) (bool, error) {
	return f.follow(fl.Job.Key, fl.Member), nil
}

func (f *MemoryFollows) follow(job, member string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	members, already := f.byJob[job]
	if !already {
		members = make(map[string]struct{})
		f.byJob[job] = members
	}
	members[member] = struct{}{}
	jobs := f.byMember[member]
	if jobs == nil {
		jobs = make(map[string]struct{})
		f.byMember[member] = jobs
	}
	jobs[job] = struct{}{}
	return already
}

// Unfollow implements Follows.
func (f *MemoryFollows) Unfollow(_ context.Context, fl Follow) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.byJob[fl.Job.Key][fl.Member]; !ok {
		return false, nil
	}
	f.remove(fl.Job.Key, fl.Member)
	return true, nil
}

// Drop implements Follows.
func (f *MemoryFollows) Drop(_ context.Context, member string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for job := range f.byMember[member] {
		f.remove(job, member)
	}
}

// Count implements Follows.
func (f *MemoryFollows) Count(member string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byMember[member])
}

// Active reports whether anyone follows job.
func (f *MemoryFollows) Active(job string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.byJob[job]
	return ok
}

// remove deletes one follow; f.mu must be held.
func (f *MemoryFollows) remove(job, member string) {
	if members := f.byJob[job]; members != nil {
		delete(members, member)
		if len(members) == 0 {
			delete(f.byJob, job)
		}
	}
	if jobs := f.byMember[member]; jobs != nil {
		delete(jobs, job)
		if len(jobs) == 0 {
			delete(f.byMember, member)
		}
	}
}
