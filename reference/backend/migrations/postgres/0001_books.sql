-- 0001 books (PostgreSQL): the backend's tables, as SQLite's 0001 in
-- PostgreSQL's types. Amounts are integers in minor units; times are Unix
-- seconds.
CREATE TABLE meta(k TEXT PRIMARY KEY, v BYTEA);
CREATE TABLE devices(
	id TEXT PRIMARY KEY,
	pubkey BYTEA NOT NULL,
	cert_serial TEXT NOT NULL DEFAULT '',
	account TEXT NOT NULL,
	currency BIGINT NOT NULL,
	phone TEXT NOT NULL DEFAULT '',
	initial BIGINT NOT NULL,
	issued BIGINT NOT NULL,
	balance BIGINT NOT NULL,
	reported_balance BIGINT,
	reported_atc BIGINT,
	param_counter BIGINT NOT NULL DEFAULT 0,
	param_applied BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL
);
-- One row per (device, ATC): state 1 settled, 2 held (authorised, pending),
-- 3 declined online, 4 a transfer-in stored and held until the payer's
-- transfer-out settles (not credited).
CREATE TABLE records(
	device_id TEXT NOT NULL,
	atc BIGINT NOT NULL,
	amount BIGINT NOT NULL,
	currency BIGINT NOT NULL,
	token TEXT NOT NULL,
	kind BIGINT NOT NULL,
	mode BIGINT NOT NULL,
	time BIGINT NOT NULL,
	body_hash BYTEA NOT NULL,
	state BIGINT NOT NULL,
	account TEXT NOT NULL,
	channel TEXT NOT NULL,
	batch TEXT NOT NULL DEFAULT '',
	at BIGINT NOT NULL,
	result BYTEA,
	raw BYTEA NOT NULL,
	PRIMARY KEY(device_id, atc)
);
CREATE INDEX records_state ON records(state);
CREATE TABLE tokens(
	token TEXT PRIMARY KEY,
	device_id TEXT NOT NULL,
	max_uses BIGINT NOT NULL,
	uses BIGINT NOT NULL,
	max_amount BIGINT NOT NULL,
	not_before BIGINT NOT NULL,
	not_after BIGINT NOT NULL,
	channels TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE params(
	device_id TEXT NOT NULL,
	counter BIGINT NOT NULL,
	body BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY(device_id, counter)
);
CREATE TABLE otps(
	id TEXT PRIMARY KEY,
	device_id TEXT NOT NULL,
	purpose TEXT NOT NULL,
	code_hash BYTEA NOT NULL,
	expires_at BIGINT NOT NULL,
	tries_left BIGINT NOT NULL,
	used BIGINT NOT NULL,
	tries BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX otps_device ON otps(device_id, created_at);
CREATE INDEX otps_created ON otps(created_at);
CREATE TABLE revocations(
	kind TEXT NOT NULL,
	subject TEXT NOT NULL,
	reason TEXT NOT NULL,
	at BIGINT NOT NULL,
	PRIMARY KEY(kind, subject)
);
CREATE TABLE transfers(
	id TEXT PRIMARY KEY,
	from_device TEXT NOT NULL,
	to_device TEXT NOT NULL,
	amount BIGINT NOT NULL,
	state TEXT NOT NULL,
	expires_at BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	done_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX transfers_state ON transfers(state);
-- Records signed by a device that conflict with a stored record of the
-- same (device, ATC): evidence of a cloned or rolled-back device.
CREATE TABLE conflicts(
	device_id TEXT NOT NULL,
	atc BIGINT NOT NULL,
	body_hash BYTEA NOT NULL,
	raw BYTEA NOT NULL,
	source TEXT NOT NULL,
	at BIGINT NOT NULL,
	PRIMARY KEY(device_id, atc, body_hash)
);
-- Offline transfers (transfer media), from the devices' records: the payer's
-- transfer-out, then the payee's transfer-in or the payer's reclaim. A
-- transfer-in that arrives before the transfer-out is held (in_held, the
-- payee's record at in_atc) and credited when the transfer-out settles.
CREATE TABLE offline_transfers(
	payer TEXT NOT NULL,
	serial BIGINT NOT NULL,
	payee TEXT NOT NULL,
	amount BIGINT NOT NULL,
	out_settled BIGINT NOT NULL,
	in_settled BIGINT NOT NULL,
	reclaimed BIGINT NOT NULL,
	in_held BIGINT NOT NULL DEFAULT 0,
	in_atc BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY(payer, serial)
);
INSERT INTO meta(k, v) VALUES('schema', convert_to('spdlab-backend-1', 'UTF8'));
