-- The exchange rates the host signed (POST /v1/rates), each bound to a
-- device and the ATC its exchange takes. Settling an exchange record
-- needs the rate it was made at among them, signed before it expired
-- (SPD-EXC-4, SPD-EXC-5): the record's own rate is the device's word, and
-- an exchange into another currency pays out at it.
CREATE TABLE rates(
	device_id TEXT NOT NULL,
	atc BIGINT NOT NULL,
	kind INTEGER NOT NULL,
	target_currency INTEGER NOT NULL,
	numerator BIGINT NOT NULL,
	denominator BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY(device_id, atc, kind, target_currency, numerator, denominator)
);
