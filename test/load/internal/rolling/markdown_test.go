package rolling

import (
	"strings"
	"testing"
)

func TestReplaceSection(t *testing.T) {
	doc := "# B\n\n## Loss\n\nx\n\n## Reproduce\n\n```sh\n```\n"
	once := string(ReplaceSection([]byte(doc), "\nfirst\n"))
	if !strings.Contains(once, "## Rolling restart\n\n"+BeginMarker+"\nfirst\n"+EndMarker+"\n\n## Reproduce") {
		t.Fatalf("section not added before Reproduce:\n%s", once)
	}
	twice := string(ReplaceSection([]byte(once+"\nnotes after\n"), "\nsecond\n"))
	if strings.Contains(twice, "first") || !strings.Contains(twice, BeginMarker+"\nsecond\n"+EndMarker) || strings.Count(twice, "## Rolling restart") != 1 {
		t.Fatalf("section not replaced in place:\n%s", twice)
	}
	if !strings.HasSuffix(twice, "notes after\n") {
		t.Fatalf("text outside the markers changed:\n%s", twice)
	}
	plain := string(ReplaceSection([]byte("# B\n"), "\nz\n"))
	if !strings.HasSuffix(plain, EndMarker+"\n\n") {
		t.Fatalf("section not appended:\n%s", plain)
	}
}

func TestCountsOf(t *testing.T) {
	c := countsOf([]int64{0, 3, 0, 1})
	if c.Total != 4 || c.ClientsWith != 2 || c.Max != 3 || c.PerClient != 1 {
		t.Fatalf("countsOf = %+v", c)
	}
}
