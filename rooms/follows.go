package rooms

import "sync"

// Follows tracks which clients follow which jobs' logs. A job is active
// while at least one client follows it.
type Follows interface {
	// Follow records that member follows job and reports whether the job was
	// already being followed (by anyone, member included).
	Follow(job, member string) (already bool)
	// Unfollow removes member's follow of job; false when it had none.
	Unfollow(job, member string) bool
	// Drop removes every follow of member (on disconnect).
	Drop(member string)
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
func (f *MemoryFollows) Follow(job, member string) bool {
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
func (f *MemoryFollows) Unfollow(job, member string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.byJob[job][member]; !ok {
		return false
	}
	f.remove(job, member)
	return true
}

// Drop implements Follows.
func (f *MemoryFollows) Drop(member string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for job := range f.byMember[member] {
		f.remove(job, member)
	}
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
