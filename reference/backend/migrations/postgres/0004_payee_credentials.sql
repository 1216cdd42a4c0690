-- A payee (merchant) registered by the issuer (POST /v1/payees) holds a
-- credential of its own that reads its account: credential is the SHA-256
-- of the bearer token (the token itself is shown once and never kept);
-- registered_at is 0 for a payee settlement credited but nobody registered.
ALTER TABLE payees ADD COLUMN credential BYTEA;
ALTER TABLE payees ADD COLUMN registered_at BIGINT NOT NULL DEFAULT 0;
