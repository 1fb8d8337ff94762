"""Device rooms: device accounts, capabilities, commands, results and their expiry."""
