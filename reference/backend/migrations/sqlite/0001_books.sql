-- 0001 books (SQLite): the backend's tables. Amounts are integers in minor
-- units; times are Unix seconds. PostgreSQL's 0001 is the same schema in its
-- types (BIGINT for INTEGER, BYTEA for BLOB).
CREATE TABLE meta(k TEXT PRIMARY KEY, v BLOB) STRICT;
CREATE TABLE devices(
	id TEXT PRIMARY KEY,
	pubkey BLOB NOT NULL,
	cert_serial TEXT NOT NULL DEFAULT '',
	account TEXT NOT NULL,
	currency INTEGER NOT NULL,
	phone TEXT NOT NULL DEFAULT '',
	initial INTEGER NOT NULL,
	issued INTEGER NOT NULL,
	balance INTEGER NOT NULL,
	reported_balance INTEGER,
	reported_atc INTEGER,
	param_counter INTEGER NOT NULL DEFAULT 0,
	param_applied INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
) STRICT;
-- One row per (device, ATC): state 1 settled, 2 held (authorised, pending),
-- 3 declined online, 4 a transfer-in stored and held until the payer's
-- transfer-out settles (not credited).
CREATE TABLE records(
	device_id TEXT NOT NULL,
	atc INTEGER NOT NULL,
	amount INTEGER NOT NULL,
	currency INTEGER NOT NULL,
	token TEXT NOT NULL,
	kind INTEGER NOT NULL,
	mode INTEGER NOT NULL,
	time INTEGER NOT NULL,
	body_hash BLOB NOT NULL,
	state INTEGER NOT NULL,
	account TEXT NOT NULL,
	channel TEXT NOT NULL,
	batch TEXT NOT NULL DEFAULT '',
	at INTEGER NOT NULL,
	result BLOB,
	raw BLOB NOT NULL,
	PRIMARY KEY(device_id, atc)
) STRICT, WITHOUT ROWID;
CREATE INDEX records_state ON records(state);
CREATE TABLE tokens(
	token TEXT PRIMARY KEY,
	device_id TEXT NOT NULL,
	max_uses INTEGER NOT NULL,
	uses INTEGER NOT NULL,
	max_amount INTEGER NOT NULL,
	not_before INTEGER NOT NULL,
	not_after INTEGER NOT NULL,
	channels TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE params(
	device_id TEXT NOT NULL,
	counter INTEGER NOT NULL,
	body BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY(device_id, counter)
) STRICT;
CREATE TABLE otps(
	id TEXT PRIMARY KEY,
	device_id TEXT NOT NULL,
	purpose TEXT NOT NULL,
	code_hash BLOB NOT NULL,
	expires_at INTEGER NOT NULL,
	tries_left INTEGER NOT NULL,
	used INTEGER NOT NULL,
	tries INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX otps_device ON otps(device_id, created_at);
CREATE INDEX otps_created ON otps(created_at);
CREATE TABLE revocations(
	kind TEXT NOT NULL,
	subject TEXT NOT NULL,
	reason TEXT NOT NULL,
	at INTEGER NOT NULL,
	PRIMARY KEY(kind, subject)
) STRICT;
CREATE TABLE transfers(
	id TEXT PRIMARY KEY,
	from_device TEXT NOT NULL,
	to_device TEXT NOT NULL,
	amount INTEGER NOT NULL,
	state TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	done_at INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX transfers_state ON transfers(state);
-- Records signed by a device that conflict with a stored record of the
-- same (device, ATC): evidence of a cloned or rolled-back device.
CREATE TABLE conflicts(
	device_id TEXT NOT NULL,
	atc INTEGER NOT NULL,
	body_hash BLOB NOT NULL,
	raw BLOB NOT NULL,
	source TEXT NOT NULL,
	at INTEGER NOT NULL,
	PRIMARY KEY(device_id, atc, body_hash)
) STRICT;
-- Offline transfers (transfer media), from the devices' records: the payer's
-- transfer-out, then the payee's transfer-in or the payer's reclaim. A
-- transfer-in that arrives before the transfer-out is held (in_held, the
-- payee's record at in_atc) and credited when the transfer-out settles.
CREATE TABLE offline_transfers(
	payer TEXT NOT NULL,
	serial INTEGER NOT NULL,
	payee TEXT NOT NULL,
	amount INTEGER NOT NULL,
	out_settled INTEGER NOT NULL,
	in_settled INTEGER NOT NULL,
	reclaimed INTEGER NOT NULL,
	in_held INTEGER NOT NULL DEFAULT 0,
	in_atc INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY(payer, serial)
) STRICT;
INSERT INTO meta(k, v) VALUES('schema', CAST('spdlab-backend-1' AS BLOB));
