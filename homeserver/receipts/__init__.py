"""Read receipts and read markers (m.fully_read), stored in their owner's account chain."""
