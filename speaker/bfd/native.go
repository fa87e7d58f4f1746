package bfd

import (
	"encoding/binary"
)

// nativeInt32 reads a C int from a control message, in host byte order.
func nativeInt32(b []byte) int32 { return int32(binary.NativeEndian.Uint32(b)) }
