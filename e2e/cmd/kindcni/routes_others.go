//go:build !linux

package main

import "errors"

func newRouteTable() (routeTable, error) {
	return nil, errors.New("routes are only implemented on Linux")
}
