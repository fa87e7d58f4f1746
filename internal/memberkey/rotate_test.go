package memberkey

import "testing"

func TestNext(t *testing.T) {
	// O is the old key, N the new one, X a third (a Secret recreated mid-roll).
	tests := []struct {
		name    string
		want    string
		have    []string
		members map[string][]string
		alone   bool
		step    Step
	}{
		{"no valid key in the Secret keeps the keyring", "", []string{"O"}, nil, false, Step{Action: Done}},
		{"settled", "N", []string{"N"}, map[string][]string{"b": {"N"}, "c": {"N"}}, false, Step{Action: Done}},
		{"settled alone", "N", []string{"N"}, nil, true, Step{Action: Done}},

		// Step 1: always safe.
		{"new key is installed first", "N", []string{"O"}, map[string][]string{"b": {"O"}}, false, Step{Action: Add, Key: "N"}},
		{"installed even when others lag", "N", []string{"O"}, map[string][]string{"b": {}}, false, Step{Action: Add, Key: "N"}},

		// Step 2: encrypt with N once every live member holds it.
		{"a member without the new key holds up the switch", "N", []string{"O", "N"}, map[string][]string{"b": {"O", "N"}, "c": {"O"}}, false,
			Step{Action: Wait, Key: "N", Why: MemberLacksKey, Member: "c"}},
		{"a member that says nothing holds up the switch", "N", []string{"O", "N"}, map[string][]string{"b": nil}, false,
			Step{Action: Wait, Key: "N", Why: MemberSaysNothing, Member: "b"}},
		{"every member holds it: switch", "N", []string{"O", "N"}, map[string][]string{"b": {"O", "N"}, "c": {"N", "O"}}, false, Step{Action: Use, Key: "N"}},
		{"no member heard: switch all the same (a cut-off speaker must be heard again)", "N", []string{"O", "N"}, nil, false, Step{Action: Use, Key: "N"}},

		// Step 3: drop O once no live member encrypts with it.
		{"a member still encrypting with the old key holds up the drop", "N", []string{"N", "O"}, map[string][]string{"b": {"N", "O"}, "c": {"O", "N"}}, false,
			Step{Action: Wait, Key: "O", Why: MemberUsesKey, Member: "c"}},
		{"every member encrypts with the new key: drop", "N", []string{"N", "O"}, map[string][]string{"b": {"N", "O"}, "c": {"N"}}, false, Step{Action: Remove, Key: "O"}},
		{"a member that says nothing holds up the drop", "N", []string{"N", "O"}, map[string][]string{"b": {"N"}, "c": {}}, false,
			Step{Action: Wait, Key: "O", Why: MemberSaysNothing, Member: "c"}},
		{"no member heard: drop nothing (not joined yet)", "N", []string{"N", "O"}, nil, false, Step{Action: Wait, Key: "O", Why: NoMemberHeard}},
		{"alone in the cluster: drop", "N", []string{"N", "O"}, nil, true, Step{Action: Remove, Key: "O"}},

		// A Secret recreated during a roll: X replaces N, which replaced O.
		{"recreated mid-roll: install the newest", "X", []string{"N", "O"}, map[string][]string{"b": {"N", "O"}}, false, Step{Action: Add, Key: "X"}},
		{"recreated mid-roll: last key dropped first", "X", []string{"X", "N", "O"}, map[string][]string{"b": {"X"}}, false, Step{Action: Remove, Key: "O"}},
		{"a key no one encrypts with goes before one in use", "X", []string{"X", "N", "O"}, map[string][]string{"b": {"N", "X"}}, false, Step{Action: Remove, Key: "O"}},
		{"a key another member encrypts with stays", "X", []string{"X", "N"}, map[string][]string{"b": {"N", "X"}}, false, Step{Action: Wait, Key: "N", Why: MemberUsesKey, Member: "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Next(tt.want, tt.have, tt.members, tt.alone); got != tt.step {
				t.Errorf("Next(%q, %q, %v, %v) = %+v; want %+v", tt.want, tt.have, tt.members, tt.alone, got, tt.step)
			}
		})
	}
}

// TestNextRollsWithoutSplit plays a rotation on three members whose views of one
// another lag by one round, and checks that at every moment every member can
// read what every other one encrypts with.
func TestNextRollsWithoutSplit(t *testing.T) {
	ring := map[string][]string{"a": {"O"}, "b": {"O"}, "c": {"O"}}
	for round := 0; round < 20; round++ {
		seen := map[string][]string{}
		for n, r := range ring {
			seen[n] = append([]string(nil), r...)
		}
		done := true
		// One member at a time, each deciding from last round's view.
		for _, n := range []string{"a", "b", "c"} {
			others := map[string][]string{}
			for m, r := range seen {
				if m != n {
					others[m] = r
				}
			}
			st := Next("N", ring[n], others, false)
			switch st.Action {
			case Add:
				ring[n] = append(ring[n], st.Key)
			case Use:
				ring[n] = append([]string{st.Key}, without(ring[n], st.Key)...)
			case Remove:
				ring[n] = without(ring[n], st.Key)
			}
			if st.Action != Done {
				done = false
			}
			for w, wr := range ring {
				for r, rr := range ring {
					if !contains(rr, wr[0]) {
						t.Fatalf("round %d: %s encrypts with %s, which %s (keys %v) cannot read", round, w, wr[0], r, rr)
					}
				}
			}
		}
		if done {
			for n, r := range ring {
				if len(r) != 1 || r[0] != "N" {
					t.Errorf("%s ends with %v; want [N]", n, r)
				}
			}
			t.Logf("rolled in %d rounds", round)
			return
		}
	}
	t.Fatalf("not done after 20 rounds: %v", ring)
}

func without(s []string, x string) []string {
	var out []string
	for _, v := range s {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
