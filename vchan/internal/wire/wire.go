// Package wire holds the byte layout of libxenvchan's shared control
// page (struct vchan_interface in xen/io/libxenvchan.h) that package
// vchan implements. It is separate so that package layoutcheck can
// compare it with the C header through cgo without vchan needing cgo.
package wire

// Offsets and sizes in struct vchan_interface.
const (
	OffLeftCons   = 0
	OffLeftProd   = 4
	OffRightCons  = 8
	OffRightProd  = 12
	OffLeftOrder  = 16
	OffRightOrder = 18
	OffCliLive    = 20
	OffSrvLive    = 21
	OffCliNotify  = 22
	OffSrvNotify  = 23
	OffGrants     = 24

	SizeofRingShared = 8  // sizeof(struct ring_shared)
	SizeofInterface  = 24 // sizeof(struct vchan_interface); grants is a flexible array
	SizeofOrder      = 2  // left_order, right_order are uint16_t
	SizeofFlag       = 1  // cli_live … srv_notify are uint8_t
	SizeofGrant      = 4  // grants[] are uint32_t

	NotifyWrite = 0x1 // VCHAN_NOTIFY_WRITE
	NotifyRead  = 0x2 // VCHAN_NOTIFY_READ
)
