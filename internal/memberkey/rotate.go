package memberkey

import (
	"fmt"
	"maps"
	"slices"
)

// A speaker rotates its memberlist keyring towards the Secret's primary key in
// three steps, each taken only when the others are ready for it (see Next):
//
//  1. Add: install the new key beside the old one. It decrypts with both and
//     still encrypts with the old one, which everyone reads.
//  2. Use: encrypt with the new key, once every live member holds it.
//  3. Remove: drop a key once no live member encrypts with it.
//
// Members are known by the fingerprints of their keys (membership.Meta.Keys,
// the one they encrypt with first), so no decision needs a key itself.

// Action is what a speaker does next to its keyring.
type Action int

const (
	// Done: the keyring holds the wanted key only, and encrypts with it.
	Done Action = iota
	// Wait: a step is due but unsafe yet; Step.Why and Step.Member say why.
	Wait
	// Add installs Step.Key for decryption.
	Add
	// Use makes Step.Key the key this speaker encrypts with.
	Use
	// Remove drops Step.Key.
	Remove
)

func (a Action) String() string {
	switch a {
	case Done:
		return "done"
	case Wait:
		return "wait"
	case Add:
		return "add"
	case Use:
		return "use"
	case Remove:
		return "remove"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// WaitReason says why a step must wait.
type WaitReason int

const (
	// NotWaiting: the step is not a Wait.
	NotWaiting WaitReason = iota
	// MemberLacksKey: a live member does not hold the wanted key yet, so it
	// could not read what this speaker would encrypt with it.
	MemberLacksKey
	// MemberUsesKey: a live member still encrypts with the key to drop.
	MemberUsesKey
	// MemberSaysNothing: a live member publishes no key fingerprints (a
	// speaker of an earlier version, or one whose metadata has not arrived):
	// nothing it could not read is safe.
	MemberSaysNothing
	// NoMemberHeard: this speaker sees no other member although the cluster
	// has other speakers (it has not joined yet, or is cut off): they may
	// still encrypt with the key it would drop.
	NoMemberHeard
)

func (r WaitReason) String() string {
	switch r {
	case NotWaiting:
		return "notWaiting"
	case MemberLacksKey:
		return "memberLacksNewKey"
	case MemberUsesKey:
		return "memberEncryptsWithOldKey"
	case MemberSaysNothing:
		return "memberPublishesNoKeys"
	case NoMemberHeard:
		return "noMemberHeard"
	}
	return fmt.Sprintf("WaitReason(%d)", int(r))
}

// Step is a speaker's next keyring change.
type Step struct {
	Action Action
	// Key is the fingerprint of the key to add, use or remove.
	Key string
	// Why and Member say, for a Wait, which member holds it up and why.
	Why    WaitReason
	Member string
}

// Next returns the next keyring change of a speaker that wants to end with the
// key whose fingerprint is want. have is the speaker's keyring (fingerprints,
// the key it encrypts with first); members maps every other live member to the
// fingerprints it publishes, in the same order; alone reports whether the
// cluster has no other speaker at all, so that an empty members is the truth
// rather than a speaker that has not heard the others yet. It has no clock and
// no network: a view that lags only makes it wait longer, since members only
// gain the new key and only stop using the old one.
//
// With no member heard, a speaker may still encrypt with the wanted key (every
// member that read the Secret holds it, and a speaker cut off with the old key
// must switch to be heard again) but drops nothing, unless alone.
//
// A speaker whose Secret has no valid key (want == "") keeps what it has: it
// is Done.
func Next(want string, have []string, members map[string][]string, alone bool) Step {
	if want == "" {
		return Step{Action: Done}
	}
	if !slices.Contains(have, want) {
		return Step{Action: Add, Key: want}
	}
	// In name order, so every speaker names the same member it waits for.
	names := slices.Sorted(maps.Keys(members))
	if have[0] != want {
		for _, n := range names {
			switch {
			case len(members[n]) == 0:
				return Step{Action: Wait, Key: want, Why: MemberSaysNothing, Member: n}
			case !slices.Contains(members[n], want):
				return Step{Action: Wait, Key: want, Why: MemberLacksKey, Member: n}
			}
		}
		return Step{Action: Use, Key: want}
	}
	// Drop the last keys first: memberlist removes a key in place, and one
	// taken from the end moves no other while gossip reads the ring.
	for i := len(have) - 1; i >= 1; i-- {
		old := have[i]
		if len(names) == 0 && !alone {
			return Step{Action: Wait, Key: old, Why: NoMemberHeard}
		}
		for _, n := range names {
			switch {
			case len(members[n]) == 0:
				return Step{Action: Wait, Key: old, Why: MemberSaysNothing, Member: n}
			case members[n][0] == old:
				return Step{Action: Wait, Key: old, Why: MemberUsesKey, Member: n}
			}
		}
		return Step{Action: Remove, Key: old}
	}
	return Step{Action: Done}
}
