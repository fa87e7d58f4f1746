package render

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/heraldlb/herald/kubectl-herald/inspect"
)

// Status writes a ServiceReport for people; ages are counted back from now.
func Status(w io.Writer, r inspect.ServiceReport, now time.Time) error {
	addrs := strings.Join(r.Addresses, ", ")
	if addrs == "" {
		addrs = "<pending>"
	}
	head := [][]string{
		{"Service:", r.Namespace + "/" + r.Name},
		{"State:", r.State},
		{"Addresses:", addrs},
	}
	if r.State == inspect.StateNotHandled {
		head = append(head, []string{"Why:", r.Why})
		return table(w, "", head)
	}
	head = append(head,
		[]string{"Pool:", orDash(r.Pool)},
		[]string{"Allocated:", condition(r.Allocated, now)},
	)
	if r.Why != "" {
		head = append(head, []string{"Why this pool:", r.Why})
	}
	if r.Refusal != "" {
		head = append(head, []string{"Refused:", r.Refusal})
	}
	if r.SharingKey != "" {
		head = append(head, []string{"Sharing key:", r.SharingKey})
	}
	announced := "no speaker has reported yet"
	switch {
	case len(r.Addresses) == 0 && r.Announced == nil:
		// Speakers report Services with addresses only.
		announced = "nothing to announce: the Service has no address"
	case r.Announced != nil:
		announced = condition(r.Announced, now)
	}
	head = append(head, []string{"Announced:", announced})
	if err := table(w, "", head); err != nil {
		return err
	}

	if len(r.SharedWith) > 0 {
		fmt.Fprintln(w, "\nShares its address with:")
		rows := [][]string{{"SERVICE", "ADDRESSES", "PORTS"}}
		for _, s := range r.SharedWith {
			rows = append(rows, []string{s.Service, strings.Join(s.Addresses, ", "), strings.Join(s.Ports, ", ")})
		}
		if err := table(w, "  ", rows); err != nil {
			return err
		}
	}

	title := "\nPools:"
	if r.State == inspect.StatePending {
		title = "\nPools considered:"
	}
	fmt.Fprintln(w, title)
	if len(r.Pools) == 0 {
		fmt.Fprintln(w, "  no IPPool exists")
	} else {
		rows := [][]string{{"POOL", "VERDICT", "WHY"}}
		for _, p := range r.Pools {
			rows = append(rows, []string{p.Pool, p.Verdict, oneLine(p.Message)})
		}
		if err := table(w, "  ", rows); err != nil {
			return err
		}
	}

	if r.Pool != "" {
		fmt.Fprintln(w, "\nAnnouncements covering IPPool "+r.Pool+":")
		if len(r.Announcements) == 0 {
			fmt.Fprintln(w, "  none: no L2Announcement or BGPAnnouncement covers this pool, so nothing announces its addresses")
		} else {
			rows := [][]string{{"KIND", "NAME", "SELECTS SERVICE", "PEERS", "NOTE"}}
			for _, a := range r.Announcements {
				peers := "-"
				if a.Kind == "BGPAnnouncement" {
					peers = "all"
					if len(a.Peers) > 0 {
						peers = strings.Join(a.Peers, ", ")
					}
				}
				rows = append(rows, []string{a.Kind, a.Name, yesNo(a.Selects), peers, orDash(a.Note)})
			}
			if err := table(w, "  ", rows); err != nil {
				return err
			}
		}
	}

	if len(r.Sessions) > 0 {
		fmt.Fprintln(w, "\nBGP sessions:")
		rows := [][]string{{"PEER", "ADDRESS", "NODE", "STATE", "SINCE", "LAST ERROR"}}
		for _, s := range r.Sessions {
			rows = append(rows, []string{s.Peer, s.PeerAddress, s.Node, s.State, age(s.Since, now), orDash(oneLine(s.LastError))})
		}
		if err := table(w, "  ", rows); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nEvents:")
	if len(r.Events) == 0 {
		fmt.Fprintln(w, "  none")
		return nil
	}
	rows := [][]string{{"LAST SEEN", "TYPE", "REASON", "FROM", "MESSAGE"}}
	for _, e := range r.Events {
		last := age(e.Last, now)
		if e.Count > 1 {
			last += fmt.Sprintf(" (x%d)", e.Count)
		}
		rows = append(rows, []string{last, e.Type, e.Reason, orDash(e.Source), oneLine(e.Message)})
	}
	return table(w, "  ", rows)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
