"""Send-to-device messages: a delivery queue per device, not in the log."""
