-- Online transfers move value on both devices: the payer's device debits
-- with TRANSFER and the backend carries the transfer medium (medium) to the
-- payee's device, which imports it with TRANSFER IN. A transfers row is the
-- courier's note of an offline transfer (payer from_device, serial); the
-- value moves only with the devices' records (offline_transfers). Rows of
-- serial 0 are transfers made before, at the issuer alone.
ALTER TABLE transfers ADD COLUMN serial INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN medium BLOB;
-- closed_at: when the transfer closed (its transfer-in or reclaim settled),
-- so that the payer's device is told at its next contact (ACKNOWLEDGE DF61)
-- whichever device settled first. reclaim_ordered_at: when the backend
-- signed a RECLAIM for it; from then on a transfer-in of it is refused.
-- expires_at: the medium's expiry, when the backend has seen the medium.
ALTER TABLE offline_transfers ADD COLUMN closed_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE offline_transfers ADD COLUMN reclaim_ordered_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE offline_transfers ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX transfers_serial ON transfers(from_device, serial) WHERE serial <> 0;
