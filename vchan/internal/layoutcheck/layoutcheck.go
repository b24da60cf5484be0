//go:build cgo && linux

// Package layoutcheck reads the layout of struct vchan_interface from the
// real xen/io/libxenvchan.h through cgo, so that its test can compare it
// with package wire. It needs the header (Debian's libxen-dev, which CI
// installs); nothing else imports it.
package layoutcheck

/*
#include <stddef.h>
#include <xen/io/libxenvchan.h>

static size_t off_left_cons(void)   { return offsetof(struct vchan_interface, left.cons); }
static size_t off_left_prod(void)   { return offsetof(struct vchan_interface, left.prod); }
static size_t off_right_cons(void)  { return offsetof(struct vchan_interface, right.cons); }
static size_t off_right_prod(void)  { return offsetof(struct vchan_interface, right.prod); }
static size_t off_left_order(void)  { return offsetof(struct vchan_interface, left_order); }
static size_t off_right_order(void) { return offsetof(struct vchan_interface, right_order); }
static size_t off_cli_live(void)    { return offsetof(struct vchan_interface, cli_live); }
static size_t off_srv_live(void)    { return offsetof(struct vchan_interface, srv_live); }
static size_t off_cli_notify(void)  { return offsetof(struct vchan_interface, cli_notify); }
static size_t off_srv_notify(void)  { return offsetof(struct vchan_interface, srv_notify); }
static size_t off_grants(void)      { return offsetof(struct vchan_interface, grants); }
static size_t size_ring(void)       { return sizeof(struct ring_shared); }
static size_t size_iface(void)      { return sizeof(struct vchan_interface); }
static size_t size_order(void)      { struct vchan_interface v; return sizeof(v.left_order); }
static size_t size_flag(void)       { struct vchan_interface v; return sizeof(v.cli_live); }
static size_t size_grant(void)      { struct vchan_interface v; return sizeof(v.grants[0]); }
*/
import "C"

// Layout maps a field name (as in package wire) to its value in C.
func Layout() map[string]int {
	return map[string]int{
		"OffLeftCons":      int(C.off_left_cons()),
		"OffLeftProd":      int(C.off_left_prod()),
		"OffRightCons":     int(C.off_right_cons()),
		"OffRightProd":     int(C.off_right_prod()),
		"OffLeftOrder":     int(C.off_left_order()),
		"OffRightOrder":    int(C.off_right_order()),
		"OffCliLive":       int(C.off_cli_live()),
		"OffSrvLive":       int(C.off_srv_live()),
		"OffCliNotify":     int(C.off_cli_notify()),
		"OffSrvNotify":     int(C.off_srv_notify()),
		"OffGrants":        int(C.off_grants()),
		"SizeofRingShared": int(C.size_ring()),
		"SizeofInterface":  int(C.size_iface()),
		"SizeofOrder":      int(C.size_order()),
		"SizeofFlag":       int(C.size_flag()),
		"SizeofGrant":      int(C.size_grant()),
		"NotifyWrite":      int(C.VCHAN_NOTIFY_WRITE),
		"NotifyRead":       int(C.VCHAN_NOTIFY_READ),
	}
}
