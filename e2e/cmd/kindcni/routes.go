package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
)

// routeTable is the kernel's routing table as the agent sees it: only the routes
// the agent owns. The Linux implementation marks them with routeProtocol.
type routeTable interface {
	// List returns the routes the agent owns, of both families.
	List() ([]Route, error)
	// Replace adds r, or replaces the route to r.Dst if there is one.
	Replace(r Route) error
	// Delete removes r; it is called only with routes List returned.
	Delete(r Route) error
}

// syncRoutes makes the owned routes in tab exactly desired: it deletes the routes
// whose destination is no longer wanted and replaces those that are missing or
// point elsewhere. It goes on past failures and returns them all.
func syncRoutes(log *slog.Logger, tab routeTable, desired []Route) error {
	have, err := tab.List()
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	wantDst := make(map[netip.Prefix]bool, len(desired))
	for _, r := range desired {
		wantDst[r.Dst] = true
	}
	var errs []error
	current := make(map[Route]bool, len(have))
	for _, r := range have {
		current[r] = true
		if wantDst[r.Dst] {
			continue // Replace below moves it if Via changed.
		}
		if err := tab.Delete(r); err != nil {
			errs = append(errs, fmt.Errorf("deleting route %v: %w", r, err))
			continue
		}
		log.Info("Deleted route", "dst", r.Dst, "via", r.Via)
	}
	for _, r := range desired {
		if current[r] {
			continue
		}
		if err := tab.Replace(r); err != nil {
			errs = append(errs, fmt.Errorf("replacing route %v: %w", r, err))
			continue
		}
		log.Info("Set route", "dst", r.Dst, "via", r.Via)
	}
	return errors.Join(errs...)
}
