package backend

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
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
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO conflicts(device_id, atc, body_hash, raw, source, at) VALUES(?, ?, ?, ?, ?, ?)`,
			ev.rec.Device, int64(ev.rec.ATC), sum[:], ev.raw, source, now); err != nil {
			return err
		}
		if s.cfg.KeepClonesInService {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO revocations(kind, subject, reason, at) VALUES('device', ?, ?, ?)`,
			ev.rec.Device, fmt.Sprintf("clone: two different records for ATC %d", ev.rec.ATC), now)
		return err
	})
	if werr != nil {
		s.cfg.Log("backend: keeping the evidence of device %s ATC %d: %v", ev.rec.Device, ev.rec.ATC, werr)
	}
}

// flaggedDevices lists the devices with conflicting records, for the audit.
func flaggedDevices(ctx context.Context, tx *sql.Tx) ([]FlaggedDevice, error) {
	rows, err := tx.QueryContext(ctx, `SELECT c.device_id, count(*), group_concat(DISTINCT c.atc),
		EXISTS(SELECT 1 FROM revocations r WHERE r.kind='device' AND r.subject=c.device_id)
		FROM conflicts c GROUP BY c.device_id ORDER BY c.device_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []FlaggedDevice{}
	for rows.Next() {
		var f FlaggedDevice
		var atcs sql.NullString
		if err := rows.Scan(&f.DeviceID, &f.Conflicts, &atcs, &f.Revoked); err != nil {
			return nil, err
		}
		f.ATCs = atcs.String
		list = append(list, f)
	}
	return list, rows.Err()
}
