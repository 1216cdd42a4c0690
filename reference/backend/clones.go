package backend

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// A device that signs two different records with the same ATC is a clone
// (two copies of one device state spending the same value) or was rolled
// back: a device never reuses an ATC. The second record is refused; it is
// kept with its raw signed bytes as evidence (table conflicts), the device
// is flagged, and unless Config.KeepClonesInService is set it is revoked,
// so that neither copy spends further. The audit lists flagged devices.

type conflictEvidence struct {
	rec DeviceRecord
	raw []byte
}

// keepEvidence stores the conflicting record an error carries, in a write
// of its own (the refused request's transaction was rolled back).
func (s *Server) keepEvidence(ctx context.Context, err error, source string) {
	var ae *apiErr
	if !errors.As(err, &ae) || ae.evidence == nil {
		return
	}
	ev := ae.evidence
	sum := sha256.Sum256(ev.raw)
	now := s.cfg.Now().UTC().Unix()
	werr := s.write(context.WithoutCancel(ctx), func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO conflicts(device_id, atc, body_hash, raw, source, at) VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
			ev.rec.Device, int64(ev.rec.ATC), sum[:], ev.raw, source, now); err != nil {
			return err
		}
		if s.cfg.KeepClonesInService {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO revocations(kind, subject, reason, at) VALUES('device', $1, $2, $3) ON CONFLICT DO NOTHING`,
			ev.rec.Device, fmt.Sprintf("clone: two different records for ATC %d", ev.rec.ATC), now)
		return err
	})
	if werr != nil {
		s.cfg.Log("backend: keeping the evidence of device %s ATC %d: %v", ev.rec.Device, ev.rec.ATC, werr)
	}
}

// flaggedDevices lists the devices with conflicting records, for the audit.
func flaggedDevices(ctx context.Context, tx *sql.Tx) ([]FlaggedDevice, error) {
	rows, err := tx.QueryContext(ctx, `SELECT c.device_id, c.atc,
		EXISTS(SELECT 1 FROM revocations r WHERE r.kind='device' AND r.subject=c.device_id)
		FROM conflicts c ORDER BY c.device_id, c.atc`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []FlaggedDevice{}
	var atcs []string
	for rows.Next() {
		var id string
		var atc int64
		var revoked bool
		if err := rows.Scan(&id, &atc, &revoked); err != nil {
			return nil, err
		}
		if n := len(list); n == 0 || list[n-1].DeviceID != id {
			list = append(list, FlaggedDevice{DeviceID: id, Revoked: revoked})
			atcs = atcs[:0]
		}
		f := &list[len(list)-1]
		f.Conflicts++
		if a := strconv.FormatInt(atc, 10); !slices.Contains(atcs, a) {
			atcs = append(atcs, a)
			f.ATCs = strings.Join(atcs, ",")
		}
	}
	return list, rows.Err()
}
