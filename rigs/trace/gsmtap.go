package trace

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A trace packet is IPv4, UDP to the GSMTAP port, then the GSMTAP header
// and the SIM payload, as osmocom's SIMtrace sends them and Wireshark's
// packet-gsmtap.c dissects them (the GSMTAP format is defined in
// libosmocore's gsmtap.h). All fields are big-endian:
//
//	IPv4 (20 bytes)   45 00 len 0000 4000 40 11 checksum 127.0.0.1 127.0.0.1
//	UDP (8 bytes)     src port 4729, dst port 4729, length, checksum 0
//	GSMTAP (16 bytes)
//	  0  version       2
//	  1  hdr_len       4 (in 32-bit words)
//	  2  type          4 = GSMTAP_TYPE_SIM
//	  3  timeslot      0
//	  4  arfcn (2)     0
//	  6  signal_dbm    0
//	  7  snr_db        0
//	  8  frame_number  0 (4)
//	  12 sub_type      0 = GSMTAP_SIM_APDU, 1 = GSMTAP_SIM_ATR
//	  13 antenna_nr    0
//	  14 sub_slot      0
//	  15 res           0
//	payload           APDU record: command APDU || response APDU
//	                  ATR record: the Answer To Reset
//
// Wireshark hands an APDU record to its GSM SIM dissector, which decodes
// the ISO 7816-4 command (SELECT, READ BINARY, ...) and the status word.

// GSMTAP constants.
const (
	GSMTAPPort    = 4729
	GSMTAPVersion = 2
	GSMTAPTypeSIM = 4
	gsmtapHdrLen  = 16
	ipv4HdrLen    = 20
	udpHdrLen     = 8
)

// SIMSubType is the GSMTAP sub-type of a GSMTAP_TYPE_SIM record.
type SIMSubType byte

const (
	SIMAPDU    SIMSubType = 0x00 // GSMTAP_SIM_APDU: a complete APDU exchange
	SIMATR     SIMSubType = 0x01 // GSMTAP_SIM_ATR: the card's ATR
	SIMPPSReq  SIMSubType = 0x02 // GSMTAP_SIM_PPS_REQ
	SIMPPSRsp  SIMSubType = 0x03 // GSMTAP_SIM_PPS_RSP
	SIMTPDUHdr SIMSubType = 0x04 // GSMTAP_SIM_TPDU_HDR
	SIMTPDUCmd SIMSubType = 0x05 // GSMTAP_SIM_TPDU_CMD
	SIMTPDURsp SIMSubType = 0x06 // GSMTAP_SIM_TPDU_RSP
	SIMTPDUSW  SIMSubType = 0x07 // GSMTAP_SIM_TPDU_SW
)

func (s SIMSubType) String() string {
	switch s {
	case SIMAPDU:
		return "APDU"
	case SIMATR:
		return "ATR"
	case SIMPPSReq:
		return "PPS request"
	case SIMPPSRsp:
		return "PPS response"
	case SIMTPDUHdr:
		return "TPDU header"
	case SIMTPDUCmd:
		return "TPDU command"
	case SIMTPDURsp:
		return "TPDU response"
	case SIMTPDUSW:
		return "TPDU status word"
	}
	return fmt.Sprintf("SIMSubType(0x%02X)", byte(s))
}

// SIMRecord is one GSMTAP SIM record.
type SIMRecord struct {
	SubType SIMSubType
	Payload []byte
}

var loopback = [4]byte{127, 0, 0, 1}

// appendIPv4GSMTAP appends a LINKTYPE_IPV4 packet carrying rec to dst.
func appendIPv4GSMTAP(dst []byte, rec SIMRecord, id uint16) []byte {
	total := ipv4HdrLen + udpHdrLen + gsmtapHdrLen + len(rec.Payload)
	be := binary.BigEndian
	start := len(dst)
	dst = append(dst, 0x45, 0x00)
	dst = be.AppendUint16(dst, uint16(total))
	dst = be.AppendUint16(dst, id)
	dst = be.AppendUint16(dst, 0x4000) // don't fragment
	dst = append(dst, 64, 17, 0, 0)    // TTL, UDP, checksum below
	dst = append(dst, loopback[:]...)
	dst = append(dst, loopback[:]...)
	be.PutUint16(dst[start+10:], ipv4Checksum(dst[start:start+ipv4HdrLen]))

	dst = be.AppendUint16(dst, GSMTAPPort)
	dst = be.AppendUint16(dst, GSMTAPPort)
	dst = be.AppendUint16(dst, uint16(udpHdrLen+gsmtapHdrLen+len(rec.Payload)))
	dst = be.AppendUint16(dst, 0) // no UDP checksum (allowed over IPv4)

	dst = append(dst, GSMTAPVersion, gsmtapHdrLen/4, GSMTAPTypeSIM, 0)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // arfcn, signal, snr, frame number
	dst = append(dst, byte(rec.SubType), 0, 0, 0)
	return append(dst, rec.Payload...)
}

func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xFFFF {
		sum = sum&0xFFFF + sum>>16
	}
	return ^uint16(sum)
}

// errNotSIM: a packet that is well formed but carries no GSMTAP SIM record.
var errNotSIM = errors.New("trace: not a GSMTAP SIM packet")

// ParseSIMRecord extracts the GSMTAP SIM record from a packet of the given
// link type. Packets that are not GSMTAP SIM over UDP/IPv4 return an error.
func ParseSIMRecord(lt LinkType, data []byte) (SIMRecord, error) {
	switch lt {
	case LinkTypeIPv4, LinkTypeRaw:
	case LinkTypeEthernet:
		if len(data) < 14 {
			return SIMRecord{}, fmt.Errorf("trace: Ethernet frame of %d bytes", len(data))
		}
		et := binary.BigEndian.Uint16(data[12:14])
		data = data[14:]
		if et == 0x8100 && len(data) >= 4 { // one 802.1Q tag
			et = binary.BigEndian.Uint16(data[2:4])
			data = data[4:]
		}
		if et != 0x0800 {
			return SIMRecord{}, errNotSIM
		}
	case LinkTypeNull:
		if len(data) < 4 {
			return SIMRecord{}, fmt.Errorf("trace: loopback frame of %d bytes", len(data))
		}
		if af := binary.LittleEndian.Uint32(data[:4]); af != 2 && binary.BigEndian.Uint32(data[:4]) != 2 {
			return SIMRecord{}, errNotSIM
		}
		data = data[4:]
	default:
		return SIMRecord{}, fmt.Errorf("trace: link type %s not supported", lt)
	}
	// IPv4
	if len(data) > 0 && data[0]>>4 != 4 {
		return SIMRecord{}, errNotSIM // IPv6 on LINKTYPE_RAW, say
	}
	if len(data) < ipv4HdrLen {
		return SIMRecord{}, fmt.Errorf("trace: IP packet of %d bytes", len(data))
	}
	ihl := int(data[0]&0x0F) * 4
	total := int(binary.BigEndian.Uint16(data[2:4]))
	if ihl < ipv4HdrLen || total < ihl || total > len(data) {
		return SIMRecord{}, fmt.Errorf("trace: bad IPv4 header (IHL %d, total length %d, %d bytes)", ihl, total, len(data))
	}
	if frag := binary.BigEndian.Uint16(data[6:8]); frag&0x3FFF != 0 {
		return SIMRecord{}, errors.New("trace: fragmented IPv4 packet")
	}
	if data[9] != 17 {
		return SIMRecord{}, errNotSIM
	}
	data = data[ihl:total]
	// UDP
	if len(data) < udpHdrLen {
		return SIMRecord{}, fmt.Errorf("trace: UDP datagram of %d bytes", len(data))
	}
	src, dst := binary.BigEndian.Uint16(data[0:2]), binary.BigEndian.Uint16(data[2:4])
	ulen := int(binary.BigEndian.Uint16(data[4:6]))
	if ulen < udpHdrLen || ulen > len(data) {
		return SIMRecord{}, fmt.Errorf("trace: UDP length %d in %d bytes", ulen, len(data))
	}
	if src != GSMTAPPort && dst != GSMTAPPort {
		return SIMRecord{}, errNotSIM
	}
	data = data[udpHdrLen:ulen]
	// GSMTAP
	if len(data) < gsmtapHdrLen {
		return SIMRecord{}, fmt.Errorf("trace: GSMTAP header of %d bytes", len(data))
	}
	hlen := int(data[1]) * 4
	if data[0] != GSMTAPVersion || hlen < gsmtapHdrLen || hlen > len(data) {
		return SIMRecord{}, fmt.Errorf("trace: GSMTAP version %d header length %d", data[0], hlen)
	}
	if data[2] != GSMTAPTypeSIM {
		return SIMRecord{}, errNotSIM
	}
	return SIMRecord{SubType: SIMSubType(data[12]), Payload: data[hlen:]}, nil
}
