-- Wrong answers to a device's identity question (POST /v1/assertions),
-- one row each: after OTPLimits.Failures of them within OTPLimits.Window
-- the device's identity answers are locked until the window has passed,
-- so that the answer falls to guessing no more than a one-time code does.
-- Kept in the books, so that the count holds across restarts.
CREATE TABLE identity_failures(
	device_id TEXT NOT NULL,
	at INTEGER NOT NULL
) STRICT;
CREATE INDEX identity_failures_device ON identity_failures(device_id, at);
