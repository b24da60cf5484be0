package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// record is one packet of a pcap file: when it was captured and the
// bytes captured (the start of the packet if the file's snap length cut
// it).
type record struct {
	at   time.Time
	data []byte
}

const (
	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d
	linkTypeRaw    = 101 // LINKTYPE_RAW: each packet starts with its IP header
)

// readPcap reads a little-endian pcap file of raw IP packets with
// microsecond or nanosecond timestamps, as netem.Pcap writes them.
func readPcap(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := parsePcap(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return recs, nil
}

func parsePcap(r io.Reader) ([]record, error) {
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	var unit time.Duration
	switch binary.LittleEndian.Uint32(h[0:]) {
	case pcapMagicMicro:
		unit = time.Microsecond
	case pcapMagicNano:
		unit = time.Nanosecond
	default:
		return nil, errors.New("not a little-endian pcap file")
	}
	if lt := binary.LittleEndian.Uint32(h[20:]); lt != linkTypeRaw {
		return nil, fmt.Errorf("link type %d, want %d (raw IP)", lt, linkTypeRaw)
	}
	snap := binary.LittleEndian.Uint32(h[16:])
	var recs []record
	for {
		var rh [16]byte
		if _, err := io.ReadFull(r, rh[:]); err == io.EOF {
			return recs, nil
		} else if err != nil {
			return nil, fmt.Errorf("record %d: %w", len(recs)+1, err)
		}
		sec, frac := binary.LittleEndian.Uint32(rh[0:]), binary.LittleEndian.Uint32(rh[4:])
		n := binary.LittleEndian.Uint32(rh[8:])
		if n > snap || n > 1<<18 {
			return nil, fmt.Errorf("record %d: %d bytes captured, more than the snap length %d", len(recs)+1, n, snap)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, fmt.Errorf("record %d: %w", len(recs)+1, err)
		}
		recs = append(recs, record{at: time.Unix(int64(sec), int64(frac)*int64(unit)), data: data})
	}
}
