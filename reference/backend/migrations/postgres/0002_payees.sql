-- Payees (merchants) are accounts at the issuer: settling a payment record
-- (kinds 01 and 02) credits the payee it names with its amount, in the
-- settlement's transaction. A record without a payee credits the payee ''.
-- The audit recomputes each balance from the settled records.
CREATE TABLE payees(
	payee TEXT PRIMARY KEY,
	balance BIGINT NOT NULL,
	records BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
